package apptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// rsaKeys are generated once per test binary: a 2048-bit key takes long
// enough that one per test would slow the suites down.
var rsaKeys = sync.OnceValues(func() (keyPair [2]*rsa.PrivateKey, err error) {
	for i := range keyPair {
		if keyPair[i], err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return keyPair, err
		}
	}
	return keyPair, nil
})

// RSAKeys returns Atlassian's install-signing key (the one a KeyServer
// serves) and another key that nobody trusts.
func RSAKeys(tb testing.TB) (atlassian, other *rsa.PrivateKey) {
	tb.Helper()
	keyPair, err := rsaKeys()
	if err != nil {
		tb.Fatalf("generate RSA keys: %v", err)
	}
	return keyPair[0], keyPair[1]
}

// PublicPEM is k as a PEM "PUBLIC KEY" (PKIX), as Atlassian's key server
// serves it.
func PublicPEM(tb testing.TB, k *rsa.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// KeyServer is Atlassian's install-key server (IDBRIDGE_INSTALL_KEYS_URL):
// the PEM of a key at /<kid>. A kid it does not know answers 404; a kid
// can be told to answer a status (FailWith) or to hang (Hang) until the
// client gives up or the test ends. It records every path asked for.
type KeyServer struct {
	*httptest.Server
	release chan struct{}

	mu       sync.Mutex
	keys     map[string][]byte
	status   map[string]int
	hang     map[string]bool
	requests []string // raw request paths, in order
}

// NewKeyServer starts a key server that serves key under kid; it stops
// when the test ends.
func NewKeyServer(tb testing.TB, kid string, key *rsa.PublicKey) *KeyServer {
	tb.Helper()
	ks := &KeyServer{
		keys:    map[string][]byte{kid: PublicPEM(tb, key)},
		status:  map[string]int{},
		hang:    map[string]bool{},
		release: make(chan struct{}),
	}
	ks.Server = httptest.NewServer(http.HandlerFunc(ks.serve))
	tb.Cleanup(func() {
		close(ks.release)
		ks.Close()
	})
	return ks
}

// FailWith makes the key server answer status for kid.
func (ks *KeyServer) FailWith(kid string, status int) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.status[kid] = status
}

// Hang makes the key server answer nothing for kid until the client gives
// up or the test ends.
func (ks *KeyServer) Hang(kid string) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.hang[kid] = true
}

// Requested is the raw (escaped) path of every request so far, in order.
func (ks *KeyServer) Requested() []string {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return slices.Clone(ks.requests)
}

func (ks *KeyServer) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	kid := strings.TrimPrefix(path, "/")
	ks.mu.Lock()
	ks.requests = append(ks.requests, path)
	key, status, hang := ks.keys[kid], ks.status[kid], ks.hang[kid]
	ks.mu.Unlock()
	switch {
	case hang:
		select {
		case <-r.Context().Done():
		case <-ks.release:
		}
	case status != 0:
		http.Error(w, http.StatusText(status), status)
	case key != nil:
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, _ = w.Write(key)
	default:
		http.NotFound(w, r)
	}
}
