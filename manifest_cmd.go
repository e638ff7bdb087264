package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"idbridge/app"
)

const manifestSummary = "Writes manifest.yml, the Forge manifest of idbridge as a Connect-on-Forge app,\n" +
	"into --out. It is generated from the descriptor that /atlassian-connect.json\n" +
	"serves, with IDBRIDGE_APP_KEY as app.connect.key, IDBRIDGE_BASE_URL as the\n" +
	"remote's baseUrl and IDBRIDGE_FORGE_APP_ID as app.id. Without a Forge app ID\n" +
	"app.id is a marked placeholder: run 'forge register' before 'forge deploy'.\n" +
	"See docs/FORGE.md."

func runManifest(env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("manifest", flag.ContinueOnError)
	out := fs.String("out", ".", "existing `directory` to write manifest.yml into")
	product := fs.String("product", "both", "whose Connect modules to write: jira, confluence or both")
	if code, ok := env.parseFlags(fs, args, manifestSummary); !ok {
		return code
	}
	switch *product {
	case "jira", "confluence", "both":
	default:
		fmt.Fprintf(env.stderr, "idbridge manifest: --product %q is not one of jira, confluence, both\n", *product)
		return exitUsage
	}
	cfg, ok := env.loadConfig("manifest")
	if !ok {
		return exitUsage
	}
	manifest, err := app.ForgeManifest(cfg, descriptorTemplate, *product)
	if err != nil {
		return env.fail("manifest", err)
	}
	path := filepath.Join(*out, "manifest.yml")
	if err := writeFileAtomic(path, manifest); err != nil {
		return env.fail("manifest", err)
	}
	if cfg.ForgeAppID == "" {
		fmt.Fprintf(env.stderr, "idbridge manifest: warning: IDBRIDGE_FORGE_APP_ID is unset, so app.id is the placeholder %s; run 'forge register' before 'forge deploy'\n", app.ForgePlaceholderAppID)
	}
	if cfg.BaseURL.Scheme != "https" {
		fmt.Fprintf(env.stderr, "idbridge manifest: warning: the remote's baseUrl %s is not https, which Atlassian requires of a deployed app\n", cfg.BaseURL)
	}
	fmt.Fprintln(env.stdout, path)
	return exitOK
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory and a rename, so that a reader (the Forge CLI) sees the old
// manifest or the new one, never half of one. The directory must exist: a
// mistyped --out should fail, not create a tree.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("--out %s does not exist: create the directory first (it is not created for you, so that a mistyped path fails)", dir)
	} else if err != nil {
		return err
	} else if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, err := os.Lstat(path); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file", path)
	}
	f, err := os.CreateTemp(dir, ".manifest.yml.*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	// Make the rename durable where the platform can sync a directory; the
	// manifest is complete either way, so a failure here is not one.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
