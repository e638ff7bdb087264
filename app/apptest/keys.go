package apptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
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

// RSAKeys returns Atlassian's install-signing key (the one tests give
// fakeatlassian's install-key server to serve) and another key that nobody
// trusts.
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
