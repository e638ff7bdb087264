package secret

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open: it must never panic, must fail
// with one of the sentinel errors, and must agree with KeyID.
func FuzzOpen(f *testing.F) {
	// Fixed keys, so that a saved corpus entry sealed under them still
	// reproduces the same path on the next run.
	ring := newTestRing(f, fixedKey(f, "k2", 0x22), fixedKey(f, "k1", 0x11))
	old := newTestRing(f, fixedKey(f, "k1", 0x11))
	ad := AD("sites", "shared_secret", "a")
	valid := seal(f, ring, []byte("s3cr3t"), ad)
	f.Add(valid, ad)
	f.Add(seal(f, old, []byte{}, nil), []byte(nil))
	f.Add(valid[:len(valid)-1], ad)
	f.Add([]byte{}, []byte{})
	f.Add([]byte{formatVersion, 2, 'k', '9'}, ad)
	f.Add(append([]byte{formatVersion, 255}, make([]byte, 40)...), ad)

	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		plaintext, err := ring.Open(sealed, ad)
		id, idErr := KeyID(sealed)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("Open error %v wraps no sentinel", err)
			}
			if idErr != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("KeyID failed (%v) but Open said %v", idErr, err)
			}
			if ring.NeedsRotation(sealed) != (idErr != nil || id != ring.PrimaryID()) {
				t.Fatal("NeedsRotation disagrees with KeyID")
			}
			return
		}
		// Only a genuine value under the fixed keys can open; it must
		// survive a re-seal.
		if idErr != nil {
			t.Fatalf("Open succeeded but KeyID failed: %v", idErr)
		}
		again, err := ring.Open(seal(t, ring, plaintext, ad), ad)
		if err != nil || !bytes.Equal(again, plaintext) {
			t.Fatalf("re-seal round trip = %q, %v; want %q", again, err, plaintext)
		}
	})
}

// FuzzParseKeys checks that ParseKeys never panics and that whatever it
// accepts survives FormatKeys.
func FuzzParseKeys(f *testing.F) {
	f.Add("k1:" + FormatKeys([]Key{fixedKey(f, "x", 1)})[2:])
	f.Add(FormatKeys([]Key{fixedKey(f, "k2", 2), fixedKey(f, "k1", 1)}))
	f.Add("")
	f.Add(",,:")
	f.Add("k1:____________________________________________")
	f.Fuzz(func(t *testing.T, spec string) {
		keys, err := ParseKeys(spec)
		if err != nil {
			return
		}
		again, err := ParseKeys(FormatKeys(keys))
		if err != nil {
			t.Fatalf("ParseKeys(FormatKeys(%q)): %v", spec, err)
		}
		if FormatKeys(again) != FormatKeys(keys) {
			t.Fatalf("round trip of %q changed the keys", spec)
		}
		if _, err := NewRing(keys); err != nil {
			t.Fatalf("NewRing rejected keys ParseKeys accepted: %v", err)
		}
	})
}
