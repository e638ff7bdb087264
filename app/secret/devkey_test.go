package secret

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// assertMode fails the test when path does not have the given permissions.
func assertMode(tb testing.TB, path string, want os.FileMode) {
	tb.Helper()
	if runtime.GOOS == "windows" {
		return // Unix permissions do not apply.
	}
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatalf("stat %s: %v", path, err)
	}
	if got := fi.Mode().Perm(); got != want {
		tb.Errorf("mode of %s = %#o, want %#o", path, got, want)
	}
}

func TestLoadOrCreateDevKeyCreatesThenReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	path := filepath.Join(dir, DevKeyFile)

	created, isNew, err := LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatalf("first LoadOrCreateDevKey: %v", err)
	}
	if !isNew {
		t.Error("first call: created = false, want true")
	}
	if d := cmp.Diff(map[string]any{"bytes": keySize, "has id": true}, map[string]any{"bytes": len(created.Bytes), "has id": created.ID != ""}); d != "" {
		t.Fatalf("created key %v is not a 32-byte key with an ID (-want +got):\n%s", created, d)
	}
	assertMode(t, dir, 0o700)
	assertMode(t, path, 0o600)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := FormatKeys([]Key{created}) + "\n"; string(content) != want {
		t.Errorf("file content is not one ParseKeys line")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %q", leftovers)
	}

	loaded, isNew, err := LoadOrCreateDevKey(dir)
	if err != nil {
		t.Fatalf("second LoadOrCreateDevKey: %v", err)
	}
	if isNew {
		t.Error("second call: created = true, want false")
	}
	if loaded.ID != created.ID || !bytes.Equal(loaded.Bytes, created.Bytes) {
		t.Error("second call returned a different key")
	}
	assertMode(t, path, 0o600)

	// The key works across "restarts": a value sealed with the first ring
	// opens with a ring built from the reloaded key.
	sealed := seal(t, newTestRing(t, created), []byte("s3cr3t"), nil)
	if got, err := newTestRing(t, loaded).Open(sealed, nil); err != nil || string(got) != "s3cr3t" {
		t.Errorf("reloaded key Open = %q, %v", got, err)
	}
}

func TestLoadOrCreateDevKeyUsesExistingFile(t *testing.T) {
	dir := t.TempDir()
	want := fixedKey(t, "operator", 0x42)
	if err := os.WriteFile(filepath.Join(dir, DevKeyFile), []byte(FormatKeys([]Key{want})), 0o600); err != nil {
		t.Fatal(err)
	}
	got, created, err := LoadOrCreateDevKey(dir)
	if err != nil || created {
		t.Fatalf("LoadOrCreateDevKey = created %v, %v; want existing key", created, err)
	}
	if got.ID != want.ID || !bytes.Equal(got.Bytes, want.Bytes) {
		t.Errorf("got key %v, want %v", got, want)
	}
}

func TestLoadOrCreateDevKeyRefusesCorruptFile(t *testing.T) {
	two := FormatKeys([]Key{fixedKey(t, "a", 1), fixedKey(t, "b", 2)})
	tests := []struct {
		name    string
		content string
		wantMsg string
	}{
		{"empty", "", "corrupt"},
		{"garbage", "not a key at all\n", "corrupt"},
		{"short key", "dev:" + strings.Repeat("A", 22) + "\n", "corrupt"},
		{"two keys", two + "\n", "holds 2 keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, DevKeyFile)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreateDevKey(dir)
			if err == nil {
				t.Fatal("LoadOrCreateDevKey succeeded on a corrupt file")
			}
			if created {
				t.Error("created = true alongside an error")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not name %s and %q", err, path, tt.wantMsg)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(after) != tt.content {
				t.Errorf("corrupt file was changed to %q", after)
			}
		})
	}
}

func TestLoadOrCreateDevKeyRefusesUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DevKeyFile)
	// A directory in place of the file is unreadable even for root.
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateDevKey(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want an error naming %s", err, path)
	}
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		t.Errorf("unreadable entry was replaced: %v", err)
	}
}

func TestLoadOrCreateDevKeyConcurrentStarts(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([]Key, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], created[i], errs[i] = LoadOrCreateDevKey(dir) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if created[i] {
			creators++
		}
		if !bytes.Equal(keys[i].Bytes, keys[0].Bytes) {
			t.Errorf("call %d returned a different key than call 0", i)
		}
	}
	if creators != 1 {
		t.Errorf("%d calls reported created, want exactly 1", creators)
	}
}
