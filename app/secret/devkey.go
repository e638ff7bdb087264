package secret

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const (
	// DevKeyFile is the name of the development key file in the data directory.
	DevKeyFile = "encryption.key"
	// devKeyID names the generated development key; an operator who later
	// moves to IDBRIDGE_ENCRYPTION_KEYS can keep it as a secondary key.
	devKeyID = "dev"
)

// LoadOrCreateDevKey returns the development key kept in dir/encryption.key,
// so that the embedded SQLite default works without configuration yet still
// seals secrets, and values sealed in one run open in the next.
//
// The file holds one line in the ParseKeys format with exactly one key. When
// it is absent, a key is generated and written with mode 0600 (dir is created
// with 0700 if missing) and created is true. The file is first written in
// full to a temporary file and then moved into place with a hard link, which,
// unlike a rename, fails if the name exists: two processes starting together
// therefore agree on one key instead of the second silently replacing the key
// the first already sealed with. Where hard links are not supported it falls
// back to a rename after checking that the file is still absent.
//
// A file that exists but cannot be read or parsed is an error naming its
// path, and it is never overwritten: replacing it would make every value
// sealed under the old key unreadable.
func LoadOrCreateDevKey(dir string) (key Key, created bool, err error) {
	path := filepath.Join(dir, DevKeyFile)
	key, err = readDevKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, false, fmt.Errorf("create dev key directory %s: %w", dir, err)
	}
	key, err = GenerateKey(devKeyID)
	if err != nil {
		return Key{}, false, fmt.Errorf("create dev key %s: %w", path, err)
	}
	created, err = writeNewFile(path, []byte(FormatKeys([]Key{key})+"\n"))
	if err != nil {
		return Key{}, false, fmt.Errorf("create dev key %s: %w", path, err)
	}
	if !created {
		// Another process created the file first; use its key.
		key, err = readDevKey(path)
		if err != nil {
			return Key{}, false, err
		}
	}
	return key, created, nil
}

// readDevKey reads and parses the key file. A missing file yields an error
// that matches fs.ErrNotExist, which is the only case in which the caller
// creates one.
func readDevKey(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		// The *fs.PathError already names the path.
		return Key{}, fmt.Errorf("read dev key: %w", err)
	}
	keys, err := ParseKeys(string(data))
	if err != nil {
		return Key{}, fmt.Errorf("dev key file %s is corrupt: %w", path, err)
	}
	if len(keys) != 1 {
		return Key{}, fmt.Errorf("dev key file %s is corrupt: holds %d keys, want 1", path, len(keys))
	}
	return keys[0], nil
}

// writeNewFile writes data to path only if path does not exist, so that a
// reader never sees a partly written file and an existing file is never
// replaced. It reports created=false, without error, when path already
// exists.
func writeNewFile(path string, data []byte) (created bool, err error) {
	dir := filepath.Dir(path)
	// CreateTemp uses mode 0600, which is what the key file keeps.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, fmt.Errorf("create temporary file: %w", err)
	}
	tmpName := tmp.Name()
	// After a successful link the temporary name is a second link to the
	// same file; removing it leaves path in place.
	defer os.Remove(tmpName)
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write temporary file: %w", err)
	}
	// Sync before publishing the name, so a crash cannot leave an empty key
	// file behind that would then be refused as corrupt on every start.
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("sync temporary file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("close temporary file: %w", err)
	}

	linkErr := os.Link(tmpName, path)
	switch {
	case linkErr == nil:
	case errors.Is(linkErr, fs.ErrExist):
		return false, nil
	default:
		// No hard links on this file system: check and rename, accepting a
		// narrow race that the link would have closed.
		if _, err := os.Lstat(path); err == nil {
			return false, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("check key file: %w", err)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return false, fmt.Errorf("move key file into place: %w", err)
		}
	}
	syncDir(dir)
	return true, nil
}

// syncDir makes the new directory entry durable. It is best effort because
// some platforms cannot sync a directory; the file content is already synced.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	_ = d.Close()
}
