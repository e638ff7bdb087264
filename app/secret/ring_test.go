package secret

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// newTestKey returns a fresh random key.
func newTestKey(tb testing.TB, id string) Key {
	tb.Helper()
	k, err := GenerateKey(id)
	if err != nil {
		tb.Fatalf("GenerateKey(%q): %v", id, err)
	}
	return k
}

// newTestRing builds a ring or fails the test.
func newTestRing(tb testing.TB, keys ...Key) *Ring {
	tb.Helper()
	r, err := NewRing(keys)
	if err != nil {
		tb.Fatalf("NewRing: %v", err)
	}
	return r
}

// seal seals or fails the test.
func seal(tb testing.TB, r *Ring, plaintext, ad []byte) []byte {
	tb.Helper()
	sealed, err := r.Seal(plaintext, ad)
	if err != nil {
		tb.Fatalf("Seal: %v", err)
	}
	return sealed
}

func TestRoundTrip(t *testing.T) {
	ring := newTestRing(t, newTestKey(t, "k1"))
	large := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tests := []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{"empty plaintext", []byte{}, AD("sites", "shared_secret", "a")},
		{"nil plaintext and ad", nil, nil},
		{"shared secret", []byte("s3cr3t-shared-with-atlassian"), AD("sites", "shared_secret", "a")},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe, 0}, AD("t", "c", "r")},
		{"unicode", []byte("clé secrète ✓"), AD("idps", "client_secret", "42")},
		{"1 MiB", large, AD("t", "c", "big")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed := seal(t, ring, tt.plaintext, tt.ad)
			if want := 2 + len("k1") + nonceSize + len(tt.plaintext) + tagSize; len(sealed) != want {
				t.Errorf("len(sealed) = %d, want %d", len(sealed), want)
			}
			if !bytes.HasPrefix(sealed, []byte{formatVersion, 2, 'k', '1'}) {
				t.Errorf("sealed header = %x, want version 1 and kid k1", sealed[:4])
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(sealed, tt.plaintext[:8]) {
				t.Error("sealed value contains the plaintext")
			}
			got, err := ring.Open(sealed, tt.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q, want %q", got, tt.plaintext)
			}
			if again := seal(t, ring, tt.plaintext, tt.ad); bytes.Equal(again, sealed) {
				t.Error("sealing twice gave identical output; nonce is not random")
			}
		})
	}
}

func TestOpenWrongAssociatedData(t *testing.T) {
	ring := newTestRing(t, newTestKey(t, "k1"))
	sealed := seal(t, ring, []byte("s3cr3t"), AD("sites", "shared_secret", "a"))
	tests := []struct {
		name string
		ad   []byte
	}{
		{"copied to another row", AD("sites", "shared_secret", "b")},
		{"copied to another column", AD("sites", "client_secret", "a")},
		{"copied to another table", AD("idps", "shared_secret", "a")},
		{"no associated data", nil},
		{"plain join of the same parts", []byte("sitesshared_secreta")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ring.Open(sealed, tt.ad)
			if !errors.Is(err, ErrDecrypt) {
				t.Fatalf("Open = %q, %v; want ErrDecrypt", got, err)
			}
			if !strings.Contains(err.Error(), `"k1"`) {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
}

func TestADUnambiguous(t *testing.T) {
	type triple struct{ table, column, row string }
	tests := []struct {
		name string
		a, b triple
	}{
		{"table/column boundary", triple{"ab", "c", "d"}, triple{"a", "bc", "d"}},
		{"column/row boundary", triple{"a", "bc", "d"}, triple{"a", "b", "cd"}},
		{"empty parts", triple{"a", "", "bc"}, triple{"a", "b", "c"}},
		{"all empty vs one", triple{"", "", ""}, triple{"", "", "\x00"}},
		{"length byte inside part", triple{"\x01a", "", ""}, triple{"", "a", ""}},
		{"row", triple{"sites", "shared_secret", "a"}, triple{"sites", "shared_secret", "b"}},
	}
	ring := newTestRing(t, newTestKey(t, "k1"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adA, adB := AD(tt.a.table, tt.a.column, tt.a.row), AD(tt.b.table, tt.b.column, tt.b.row)
			if bytes.Equal(adA, adB) {
				t.Fatalf("AD%q == AD%q = %x", tt.a, tt.b, adA)
			}
			sealed := seal(t, ring, []byte("v"), adA)
			if _, err := ring.Open(sealed, adB); !errors.Is(err, ErrDecrypt) {
				t.Errorf("value bound to %q opened with %q: err = %v, want ErrDecrypt", tt.a, tt.b, err)
			}
		})
	}
	if !bytes.Equal(AD("sites", "shared_secret", "a"), AD("sites", "shared_secret", "a")) {
		t.Error("AD is not deterministic")
	}
}

func TestOpenTampered(t *testing.T) {
	ring := newTestRing(t, newTestKey(t, "k1"))
	ad := AD("sites", "shared_secret", "a")
	sealed := seal(t, ring, []byte("a shared secret of some length"), ad)
	// Bytes 1..hdrEnd are the kid length and the kid.
	hdrEnd := 2 + len("k1")
	for _, mask := range []byte{0x01, 0x80, 0xff} {
		for i := range sealed {
			t.Run(fmt.Sprintf("mask %#02x byte %d", mask, i), func(t *testing.T) {
				tampered := bytes.Clone(sealed)
				tampered[i] ^= mask
				got, err := ring.Open(tampered, ad)
				switch {
				case err == nil:
					t.Fatalf("Open succeeded with %q", got)
				case errors.Is(err, ErrDecrypt), errors.Is(err, ErrMalformed):
				case errors.Is(err, ErrUnknownKey) && 1 <= i && i < hdrEnd:
					// A flipped kid or kid length byte can spell another
					// valid ID ("j1", "k1" plus a nonce byte) that the ring
					// does not hold; that is reported as such.
				default:
					t.Fatalf("Open error = %v, want ErrDecrypt or ErrMalformed", err)
				}
				if got != nil {
					t.Errorf("Open returned plaintext %q alongside an error", got)
				}
			})
		}
	}
	if _, err := ring.Open(append(bytes.Clone(sealed), 0), ad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with a byte appended: err = %v, want ErrDecrypt", err)
	}
}

// TestHeaderAuthenticated relabels a value to another ID that maps to the
// same key bytes: only the header being part of the additional data makes
// this fail.
func TestHeaderAuthenticated(t *testing.T) {
	k1 := newTestKey(t, "k1")
	k3 := Key{ID: "k3", Bytes: k1.Bytes}
	ring := newTestRing(t, k1, k3)
	ad := AD("sites", "shared_secret", "a")
	sealed := seal(t, ring, []byte("s3cr3t"), ad)

	relabelled := bytes.Clone(sealed)
	relabelled[3] = '3'
	if id, err := KeyID(relabelled); err != nil || id != "k3" {
		t.Fatalf("KeyID(relabelled) = %q, %v; want k3", id, err)
	}
	if _, err := ring.Open(relabelled, ad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open(relabelled) err = %v, want ErrDecrypt", err)
	}

	// Same check for the version byte: a value claiming another version is
	// not opened, whatever that version would mean.
	reversioned := bytes.Clone(sealed)
	reversioned[0] = 2
	if _, err := ring.Open(reversioned, ad); !errors.Is(err, ErrMalformed) {
		t.Errorf("Open(version 2) err = %v, want ErrMalformed", err)
	}
}

func TestOpenTruncated(t *testing.T) {
	ring := newTestRing(t, newTestKey(t, "k1"))
	ad := AD("sites", "shared_secret", "a")
	sealed := seal(t, ring, []byte("twenty bytes secret!"), ad)
	full := 2 + len("k1") + nonceSize + tagSize
	for n := range len(sealed) {
		t.Run(fmt.Sprintf("%d bytes", n), func(t *testing.T) {
			want := ErrDecrypt
			if n < full {
				want = ErrMalformed
			}
			got, err := ring.Open(sealed[:n], ad)
			if !errors.Is(err, want) {
				t.Fatalf("Open(%d of %d bytes) = %q, %v; want %v", n, len(sealed), got, err, want)
			}
			_, err = KeyID(sealed[:n])
			if n < full && !errors.Is(err, ErrMalformed) {
				t.Errorf("KeyID(%d bytes) err = %v, want ErrMalformed", n, err)
			}
			if n >= full && err != nil {
				t.Errorf("KeyID(%d bytes) err = %v, want nil", n, err)
			}
		})
	}
}

func TestOpenMalformedHeader(t *testing.T) {
	body := make([]byte, nonceSize+tagSize)
	tests := []struct {
		name   string
		sealed []byte
	}{
		{"nil", nil},
		{"version 0", append([]byte{0, 2, 'k', '1'}, body...)},
		{"kid length 0", append([]byte{1, 0}, body...)},
		{"kid length 33", append(append([]byte{1, 33}, strings.Repeat("k", 33)...), body...)},
		{"kid length past end", []byte{1, 200, 'k', '1'}},
		{"kid with forbidden byte", append([]byte{1, 2, 'k', ':'}, body...)},
		{"kid with non-ASCII", append([]byte{1, 2, 'k', 0xff}, body...)},
	}
	ring := newTestRing(t, newTestKey(t, "k1"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ring.Open(tt.sealed, nil); !errors.Is(err, ErrMalformed) {
				t.Errorf("Open err = %v, want ErrMalformed", err)
			}
			if _, err := KeyID(tt.sealed); !errors.Is(err, ErrMalformed) {
				t.Errorf("KeyID err = %v, want ErrMalformed", err)
			}
			if !ring.NeedsRotation(tt.sealed) {
				t.Error("NeedsRotation = false for a malformed value, want true")
			}
		})
	}
}

func TestOpenUnknownKey(t *testing.T) {
	old := newTestRing(t, newTestKey(t, "k1"))
	other := newTestRing(t, newTestKey(t, "k2"))
	ad := AD("sites", "shared_secret", "a")
	sealed := seal(t, old, []byte("s3cr3t"), ad)

	got, err := other.Open(sealed, ad)
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open = %q, %v; want ErrUnknownKey", got, err)
	}
	if want := `sealed with unknown key "k1"`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if id, err := KeyID(sealed); err != nil || id != "k1" {
		t.Errorf("KeyID = %q, %v; want k1", id, err)
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := newTestKey(t, "k1"), newTestKey(t, "k2")
	before := newTestRing(t, k1)
	after := newTestRing(t, k2, k1)
	ad := AD("sites", "shared_secret", "a")
	oldSealed := seal(t, before, []byte("s3cr3t"), ad)

	if before.NeedsRotation(oldSealed) {
		t.Error("NeedsRotation under the sealing ring = true, want false")
	}
	got, err := after.Open(oldSealed, ad)
	if err != nil || string(got) != "s3cr3t" {
		t.Fatalf("rotated ring Open(old value) = %q, %v; want s3cr3t", got, err)
	}
	if !after.NeedsRotation(oldSealed) {
		t.Error("NeedsRotation(old value) = false, want true")
	}

	resealed := seal(t, after, got, ad)
	if id, err := KeyID(resealed); err != nil || id != "k2" {
		t.Errorf("KeyID(resealed) = %q, %v; want k2", id, err)
	}
	if after.NeedsRotation(resealed) {
		t.Error("NeedsRotation(new value) = true, want false")
	}
	if got, err := after.Open(resealed, ad); err != nil || string(got) != "s3cr3t" {
		t.Errorf("Open(resealed) = %q, %v; want s3cr3t", got, err)
	}
	// A replica still on the old ring cannot open new values and says why.
	if _, err := before.Open(resealed, ad); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), `"k2"`) {
		t.Errorf("old ring Open(new value) err = %v, want ErrUnknownKey naming k2", err)
	}
}

func TestNewRing(t *testing.T) {
	good := fixedKey(t, "k1", 0x11)
	tests := []struct {
		name    string
		keys    []Key
		wantErr string
	}{
		{"no keys", nil, "at least one key"},
		{"short key", []Key{{ID: "k1", Bytes: make([]byte, 16)}}, `key "k1": 16 bytes, want 32`},
		{"invalid id", []Key{good, {ID: "k 2", Bytes: good.Bytes}}, "key 2: key ID must match"},
		{"duplicate id", []Key{good, fixedKey(t, "k1", 0x22)}, `key "k1": duplicate key ID`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewRing(tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewRing err = %v, want %q", err, tt.wantErr)
			}
		})
	}

	ring := newTestRing(t, fixedKey(t, "k2", 0x22), good)
	if ring.PrimaryID() != "k2" {
		t.Errorf("PrimaryID = %q, want k2", ring.PrimaryID())
	}
	ids := ring.IDs()
	if strings.Join(ids, ",") != "k2,k1" {
		t.Errorf("IDs = %q, want [k2 k1]", ids)
	}
	ids[0] = "changed"
	if ring.IDs()[0] != "k2" {
		t.Error("IDs returned the ring's own slice")
	}
	for _, out := range []string{fmt.Sprintf("%v", ring), fmt.Sprintf("%+v", ring), fmt.Sprintf("%#v", ring)} {
		if !strings.Contains(out, "k2") || strings.Contains(out, "aeads") {
			t.Errorf("ring prints as %q, want IDs only", out)
		}
	}
}

// TestNewRingCopiesKeys changes the caller's key bytes after NewRing: values
// must still open, so the ring holds no reference to them.
func TestNewRingCopiesKeys(t *testing.T) {
	k := newTestKey(t, "k1")
	ring := newTestRing(t, k)
	sealed := seal(t, ring, []byte("s3cr3t"), nil)
	clear(k.Bytes)
	if got, err := ring.Open(sealed, nil); err != nil || string(got) != "s3cr3t" {
		t.Errorf("Open after caller wiped key = %q, %v", got, err)
	}
}

func TestRingConcurrent(t *testing.T) {
	ring := newTestRing(t, newTestKey(t, "k2"), newTestKey(t, "k1"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				ad := AD("sites", "shared_secret", fmt.Sprint(g, "-", i))
				want := fmt.Sprintf("secret %d/%d", g, i)
				sealed, err := ring.Seal([]byte(want), ad)
				if err != nil {
					errs <- err
					return
				}
				got, err := ring.Open(sealed, ad)
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("Open = %q, %v; want %q", got, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
