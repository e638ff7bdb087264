package store

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
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
	return formatID(prefix, b)
}

// NewOrderedID returns an identifier of NewID's shape (ValidID accepts
// both) whose first 48 bits are the time in milliseconds and whose other
// 80 are random, for the rows a directory adds in bulk (users, groups).
// Random keys put every insert on another leaf page of each index that
// holds them (the table's primary key, the outbox's index by resource): on
// SQLite each such page is written to the WAL at its commit and again at
// the checkpoint. Keys made close in time share their leading characters,
// so the inserts of a batch land on a few pages. 80 random bits stay
// unguessable; what the time prefix tells is the creation time, which
// SCIM answers in meta.created anyway.
func NewOrderedID(prefix string, now time.Time) string {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic(err)
	}
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(now.UnixMilli()))
	copy(b[:6], t[2:])
	return formatID(prefix, b)
}

// formatID is the text of an ID: the prefix, "_", and the 128 bits in
// lower-case unpadded base32 (what ValidID checks).
func formatID(prefix string, b [16]byte) string {
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b[:]))
}

// idRandomLen is the length of NewID's random part: 128 bits in unpadded
// base32.
const idRandomLen = 26

// ValidID reports whether id has the shape NewID gives IDs of the kind
// prefix: the prefix, "_", and 26 characters of lower-case base32. Checked
// before any lookup, so that a malformed ID from a URL costs no database
// round trip and no cache entry, and never reaches the database (which may
// refuse its bytes: NUL or invalid UTF-8 on PostgreSQL).
func ValidID(prefix, id string) bool {
	if len(id) != len(prefix)+1+idRandomLen || id[:len(prefix)] != prefix || id[len(prefix)] != '_' {
		return false
	}
	for i := len(prefix) + 1; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
