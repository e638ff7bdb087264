package secret

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

const (
	// keySize is 32 bytes because the ring only speaks AES-256.
	keySize = 32
	// maxKeyIDLen keeps the key ID within the one-byte length of the sealed header.
	maxKeyIDLen = 32
)

// Key is one entry of the key ring: an ID that is stored in clear with every
// value it seals, and 32 bytes of AES-256 key material.
type Key struct {
	ID    string
	Bytes []byte // exactly 32 bytes
}

// String redacts the key material so that a Key printed with %v or %+v, for
// example inside a config dump or an error, never reveals it.
func (k Key) String() string {
	return fmt.Sprintf("secret.Key{ID: %q, Bytes: <redacted %d bytes>}", k.ID, len(k.Bytes))
}

// GoString redacts the key material for %#v, which would otherwise print the bytes.
func (k Key) GoString() string { return k.String() }

// LogValue redacts the key material when a Key is passed to slog, whose JSON
// handler would otherwise encode the bytes.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("bytes", "redacted"))
}

// ParseKeys parses the IDBRIDGE_ENCRYPTION_KEYS format
// "kid:base64(32 bytes)[,kid:base64...]"; the first key is the one that seals.
//
// A kid matches [A-Za-z0-9._-]{1,32}. Each key may be written in standard or
// URL-safe base64, padded or not, because operators paste keys from different
// tools. Surrounding white space is ignored so that a value read from a file
// with a trailing newline parses. Errors name the offending kid, or its
// position when the kid itself is invalid, and never include key material,
// because they end up in logs.
func ParseKeys(spec string) ([]Key, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, errors.New(`no encryption keys: want "kid:base64(32 bytes)[,kid:base64...]"`)
	}
	entries := strings.Split(spec, ",")
	keys := make([]Key, 0, len(entries))
	seen := make(map[string]bool, len(entries))
	for i, entry := range entries {
		pos := i + 1
		id, encoded, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if !ok {
			if strings.TrimSpace(entry) == "" {
				return nil, fmt.Errorf("entry %d is empty", pos)
			}
			return nil, fmt.Errorf(`entry %d: missing ":" between key ID and key`, pos)
		}
		id, encoded = strings.TrimSpace(id), strings.TrimSpace(encoded)
		if !validKeyID(id) {
			return nil, fmt.Errorf("entry %d: key ID must match [A-Za-z0-9._-]{1,32}", pos)
		}
		if seen[id] {
			return nil, fmt.Errorf("key %q: duplicate key ID", id)
		}
		seen[id] = true
		b, err := decodeKey(encoded)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		keys = append(keys, Key{ID: id, Bytes: b})
	}
	return keys, nil
}

// decodeKey accepts every common base64 alphabet and padding. The decoder's
// own error is dropped, not wrapped, so nothing derived from the input leaks.
func decodeKey(encoded string) ([]byte, error) {
	if encoded == "" {
		return nil, errors.New("key is empty")
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		b, err := enc.DecodeString(encoded)
		if err != nil {
			continue
		}
		if len(b) != keySize {
			return nil, fmt.Errorf("key decodes to %d bytes, want %d", len(b), keySize)
		}
		return b, nil
	}
	return nil, errors.New("key is not valid base64")
}

// FormatKeys is the inverse of ParseKeys: it renders keys in the
// IDBRIDGE_ENCRYPTION_KEYS format with padded standard base64.
func FormatKeys(keys []Key) string {
	var sb strings.Builder
	for i, k := range keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k.ID)
		sb.WriteByte(':')
		sb.WriteString(base64.StdEncoding.EncodeToString(k.Bytes))
	}
	return sb.String()
}

// GenerateKey returns a new key with 32 bytes from crypto/rand. The ID is
// validated here so that a generated key always survives FormatKeys and
// ParseKeys.
func GenerateKey(id string) (Key, error) {
	if !validKeyID(id) {
		return Key{}, fmt.Errorf("generate key %q: key ID must match [A-Za-z0-9._-]{1,32}", id)
	}
	b := make([]byte, keySize)
	if _, err := rand.Read(b); err != nil {
		return Key{}, fmt.Errorf("generate key %q: %w", id, err)
	}
	return Key{ID: id, Bytes: b}, nil
}

// validKeyID reports whether id matches ^[A-Za-z0-9._-]{1,32}$. The alphabet
// keeps IDs safe to print, to put in the env format (no ',' or ':') and to
// store in the one-byte-length sealed header.
func validKeyID(id string) bool {
	if len(id) == 0 || len(id) > maxKeyIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
