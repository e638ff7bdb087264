package store_test

import (
	"encoding/base32"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"idbridge/app/store"
)

// Ordered IDs keep NewID's shape (existing IDs and new ones pass the same
// check), carry the time in milliseconds in their first 48 bits and 80
// random bits after it, and IDs made close in time share their leading
// characters (the point of them: inserts land on neighbouring index pages).
func TestNewOrderedID(t *testing.T) {
	dec := base32.StdEncoding.WithPadding(base32.NoPadding)
	at := time.Date(2026, 12, 7, 3, 4, 5, 678_000_000, time.UTC)
	seen := map[string]bool{}
	for i := range 1000 {
		id := store.NewOrderedID("u", at.Add(time.Duration(i)*time.Millisecond))
		if !store.ValidID("u", id) {
			t.Fatalf("%q does not have an ID's shape", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
		b, err := dec.DecodeString(strings.ToUpper(id[2:]))
		if err != nil || len(b) != 16 {
			t.Fatalf("%q: %v, %d bytes", id, err, len(b))
		}
		var ms [8]byte
		copy(ms[2:], b[:6])
		if got, want := int64(binary.BigEndian.Uint64(ms[:])), at.Add(time.Duration(i)*time.Millisecond).UnixMilli(); got != want {
			t.Fatalf("%q carries %d ms, want %d", id, got, want)
		}
	}
	// Many in the same millisecond: all different (80 random bits).
	same := map[string]bool{}
	for range 1000 {
		same[store.NewOrderedID("g", at)] = true
	}
	if len(same) != 1000 {
		t.Fatalf("%d distinct IDs of 1,000 made in one millisecond", len(same))
	}
	// A second apart, they still share their first seven characters
	// after the prefix (the top 35 bits of the time).
	a, b := store.NewOrderedID("u", at), store.NewOrderedID("u", at.Add(time.Second))
	if a[:2+7] != b[:2+7] {
		t.Fatalf("%q and %q, made a second apart, share no leading characters", a, b)
	}
	if random := store.NewID("u"); !store.ValidID("u", random) {
		t.Fatalf("NewID's %q no longer passes ValidID", random)
	}
}
