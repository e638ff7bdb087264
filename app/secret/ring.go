package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

const (
	// formatVersion is the first byte of every sealed value, so that the
	// format can change later without guessing what old rows contain.
	formatVersion = 1
	nonceSize     = 12
	tagSize       = 16
	// minSealedLen is the shortest value that can be well formed: a one-byte
	// kid and an empty plaintext.
	minSealedLen = 2 + 1 + nonceSize + tagSize
)

// Sentinel errors let callers tell a configuration problem (a key is
// missing from the ring) from a data problem (a value was altered, copied to
// the wrong row, or is not a sealed value at all). Returned errors wrap them
// and name the key ID where there is one.
var (
	// ErrUnknownKey means the value names a key ID that is not in the ring,
	// usually because a retired key was removed too early.
	ErrUnknownKey = errors.New("sealed with unknown key")
	// ErrDecrypt means authentication failed: the value, its header or the
	// associated data differ from what was sealed, or the key bytes changed.
	ErrDecrypt = errors.New("cannot decrypt sealed value: wrong key, wrong associated data or tampered value")
	// ErrMalformed means the bytes are not a sealed value of a known format.
	ErrMalformed = errors.New("malformed sealed value")
)

// Ring seals with its primary (first) key and opens with any of its keys.
// It is immutable after NewRing and safe for concurrent use; create it with
// NewRing.
type Ring struct {
	primary string
	ids     []string
	// aeads is built once in NewRing so that Seal and Open never redo the
	// AES key schedule and never hold raw key bytes.
	aeads map[string]cipher.AEAD
}

// NewRing builds a ring from keys; the first key seals, all keys open. It
// needs at least one key and rejects invalid or duplicate IDs and keys that
// are not 32 bytes. The ring does not keep a reference to the key slices.
func NewRing(keys []Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("new key ring: at least one key is required")
	}
	r := &Ring{
		primary: keys[0].ID,
		ids:     make([]string, 0, len(keys)),
		aeads:   make(map[string]cipher.AEAD, len(keys)),
	}
	for i, k := range keys {
		if !validKeyID(k.ID) {
			return nil, fmt.Errorf("new key ring: key %d: key ID must match [A-Za-z0-9._-]{1,32}", i+1)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("new key ring: key %q: duplicate key ID", k.ID)
		}
		if len(k.Bytes) != keySize {
			return nil, fmt.Errorf("new key ring: key %q: %d bytes, want %d", k.ID, len(k.Bytes), keySize)
		}
		block, err := aes.NewCipher(k.Bytes)
		if err != nil {
			return nil, fmt.Errorf("new key ring: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("new key ring: key %q: %w", k.ID, err)
		}
		r.aeads[k.ID] = aead
		r.ids = append(r.ids, k.ID)
	}
	return r, nil
}

// PrimaryID returns the ID of the key that seals new values.
func (r *Ring) PrimaryID() string { return r.primary }

// IDs returns the key IDs, primary first. The slice is a copy, so callers
// cannot change the ring through it.
func (r *Ring) IDs() []string { return append([]string(nil), r.ids...) }

// String describes the ring by key IDs only; without it %v would print the
// AES key schedules held in the AEADs.
func (r *Ring) String() string {
	return fmt.Sprintf("secret.Ring{primary: %q, ids: [%s]}", r.primary, strings.Join(r.ids, " "))
}

// GoString redacts %#v for the same reason as String.
func (r *Ring) GoString() string { return r.String() }

// Seal encrypts plaintext under the primary key with a fresh random nonce.
// ad should come from AD so the value only opens for the same table, column
// and row.
func (r *Ring) Seal(plaintext, ad []byte) ([]byte, error) {
	aead := r.aeads[r.primary]
	hdr := header(r.primary)
	out := make([]byte, len(hdr)+nonceSize, len(hdr)+nonceSize+len(plaintext)+tagSize)
	copy(out, hdr)
	nonce := out[len(hdr):]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal with key %q: read nonce: %w", r.primary, err)
	}
	return aead.Seal(out, nonce, plaintext, additionalData(hdr, ad)), nil
}

// Open decrypts a value sealed by any key of the ring with the same ad. The
// error wraps ErrMalformed, ErrUnknownKey or ErrDecrypt.
func (r *Ring) Open(sealed, ad []byte) ([]byte, error) {
	p, err := parse(sealed)
	if err != nil {
		return nil, err
	}
	aead, ok := r.aeads[p.keyID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, p.keyID)
	}
	plaintext, err := aead.Open(nil, p.nonce, p.ciphertext, additionalData(p.header, ad))
	if err != nil {
		// The cipher's error carries no detail worth keeping.
		return nil, fmt.Errorf("open with key %q: %w", p.keyID, ErrDecrypt)
	}
	return plaintext, nil
}

// KeyID returns the ID of the key that sealed the value, without decrypting
// it, so a rotation job can find stale values cheaply. The ID is not
// authenticated until Open succeeds.
func KeyID(sealed []byte) (string, error) {
	p, err := parse(sealed)
	if err != nil {
		return "", err
	}
	return p.keyID, nil
}

// NeedsRotation reports whether the value was sealed under a key other than
// the primary. A value whose header cannot be parsed also reports true: it is
// not under the primary key either, and a rotation job that re-opens it will
// surface the error instead of skipping the row silently.
func (r *Ring) NeedsRotation(sealed []byte) bool {
	id, err := KeyID(sealed)
	return err != nil || id != r.primary
}

// AD builds the associated data that binds a sealed value to its table,
// column and row. Each part is length-prefixed so that distinct triples can
// never encode to the same bytes, as a plain join would ("ab","c" and
// "a","bc").
func AD(table, column, rowID string) []byte {
	b := make([]byte, 0, 3*binary.MaxVarintLen64+len(table)+len(column)+len(rowID))
	for _, part := range [...]string{table, column, rowID} {
		b = binary.AppendUvarint(b, uint64(len(part)))
		b = append(b, part...)
	}
	return b
}

// header returns version, kid length and kid, the clear-text prefix of a
// sealed value. keyID is already validated, so its length fits in a byte.
func header(keyID string) []byte {
	h := make([]byte, 0, 2+len(keyID))
	h = append(h, formatVersion, byte(len(keyID)))
	return append(h, keyID...)
}

// additionalData authenticates the header together with the caller's ad. The
// header is self-delimiting (its length is in its second byte), so the
// concatenation is unambiguous. A fresh slice is built because GCM forbids
// the additional data from overlapping the output.
func additionalData(hdr, ad []byte) []byte {
	out := make([]byte, 0, len(hdr)+len(ad))
	out = append(out, hdr...)
	return append(out, ad...)
}

// parsed is a sealed value split into its parts; the slices alias the input.
type parsed struct {
	header     []byte
	keyID      string
	nonce      []byte
	ciphertext []byte
}

// parse checks the structure of a sealed value without any key. It never
// indexes past the input, which is what keeps Open panic-free on garbage.
func parse(sealed []byte) (parsed, error) {
	if len(sealed) < minSealedLen {
		return parsed{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(sealed), minSealedLen)
	}
	if sealed[0] != formatVersion {
		return parsed{}, fmt.Errorf("%w: unsupported version %d", ErrMalformed, sealed[0])
	}
	n := int(sealed[1])
	if n == 0 || n > maxKeyIDLen {
		return parsed{}, fmt.Errorf("%w: key ID length %d out of range", ErrMalformed, n)
	}
	hdrLen := 2 + n
	if len(sealed) < hdrLen+nonceSize+tagSize {
		return parsed{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(sealed), hdrLen+nonceSize+tagSize)
	}
	keyID := string(sealed[2:hdrLen])
	if !validKeyID(keyID) {
		// The bytes are not echoed: they are garbage, not a printable ID.
		return parsed{}, fmt.Errorf("%w: invalid key ID", ErrMalformed)
	}
	return parsed{
		header:     sealed[:hdrLen],
		keyID:      keyID,
		nonce:      sealed[hdrLen : hdrLen+nonceSize],
		ciphertext: sealed[hdrLen+nonceSize:],
	}, nil
}
