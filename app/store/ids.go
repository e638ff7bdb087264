package store

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns an opaque, URL-safe random identifier with a short prefix
// naming its kind ("s" for sites). 128 random bits: unguessable, so an ID in
// a URL (the SCIM base URL, the portal) reveals nothing about other sites.
func NewID(prefix string) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms (Go 1.24+ panics
		// itself rather than return an error).
		panic(err)
	}
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}
