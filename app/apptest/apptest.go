// Package apptest holds the test doubles that the tests of app and e2e
// share: a log buffer safe for concurrent writers, random names, a
// test-side Connect query string hash (the oracle app/connect is checked
// against), Atlassian's install-signing RSA keys, a fake install-key server
// and a JWT signer.
//
// It is test support only: import it only from _test.go files
// (deps_test.go fails when a package imports it from its code). It imports
// no idbridge package, so what it says about Connect is never derived from
// the code under test.
package apptest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
)

// LockedBuffer collects writes from concurrent goroutines: an App's log
// lines, a browser's output. The zero value is ready to use.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// RandomHex is n random bytes in hex (2n characters), for client keys,
// shared secrets and tokens that no two tests share.
func RandomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}
