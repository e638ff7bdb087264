package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The linters CI runs, pinned by version and fetched through the Go module
// proxy (nothing to install). staticcheck runs its default checks;
// deadcode, over the binaries and their tests, lists functions nothing
// reaches (a helper only tests use belongs in a _test.go file or in test
// support).
const (
	staticcheck = "honnef.co/go/tools/cmd/staticcheck@v0.8.2"
	deadcode    = "golang.org/x/tools/cmd/deadcode@v0.52.0"
)

// TestLinters keeps the tree clean of what staticcheck reports and of dead
// code. It runs when CI is set (CI and the landing command set it), so a
// change that adds either fails before it reaches main; .ci/run runs it
// once on its own and sets IDBRIDGE_LINTED so the full test run does not
// run it again.
func TestLinters(t *testing.T) {
	if os.Getenv("CI") == "" {
		t.Skip("runs in CI (set CI=true to run it here)")
	}
	if os.Getenv("IDBRIDGE_LINTED") != "" {
		t.Skip("linted already in this CI run")
	}
	for _, tool := range []struct {
		name string
		args []string
	}{
		{"staticcheck", []string{"run", staticcheck, "./..."}},
		{"deadcode", []string{"run", deadcode, "-test", "./..."}},
	} {
		t.Run(tool.name, func(t *testing.T) {
			// Findings go to stdout; stderr carries the go command's own
			// lines ("go: downloading …" on a fresh module cache), which
			// are shown only when the tool fails.
			var stderr strings.Builder
			cmd := exec.Command("go", tool.args...)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || strings.TrimSpace(string(out)) != "" {
				t.Errorf("%s reports (%v):\n%s%s", tool.name, err, out, stderr.String())
			}
		})
	}
}
