package secret

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fixedKey returns a key with recognisable bytes, so tests can check that the
// material never shows up in errors or output.
func fixedKey(tb testing.TB, id string, fill byte) Key {
	tb.Helper()
	return Key{ID: id, Bytes: bytes.Repeat([]byte{fill}, keySize)}
}

func TestParseKeys(t *testing.T) {
	k1 := bytes.Repeat([]byte{0x01}, 32)
	ff := bytes.Repeat([]byte{0xff}, 32) // '/' in std base64, '_' in URL-safe
	std := base64.StdEncoding.EncodeToString
	tests := []struct {
		name string
		spec string
		want []Key
	}{
		{"single padded std", "k1:" + std(k1), []Key{{"k1", k1}}},
		{"raw std", "k1:" + base64.RawStdEncoding.EncodeToString(ff), []Key{{"k1", ff}}},
		{"url-safe padded", "k1:" + base64.URLEncoding.EncodeToString(ff), []Key{{"k1", ff}}},
		{"url-safe raw", "k1:" + base64.RawURLEncoding.EncodeToString(ff), []Key{{"k1", ff}}},
		{"two keys, primary first", "k2:" + std(ff) + ",k1:" + std(k1), []Key{{"k2", ff}, {"k1", k1}}},
		{"white space and trailing newline", "  k2 : " + std(ff) + " ,\tk1:" + std(k1) + "\n", []Key{{"k2", ff}, {"k1", k1}}},
		{"every kid character", "aZ09._-:" + std(k1), []Key{{"aZ09._-", k1}}},
		{"32-character kid", strings.Repeat("k", 32) + ":" + std(k1), []Key{{strings.Repeat("k", 32), k1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKeys(tt.spec)
			if err != nil {
				t.Fatalf("ParseKeys: %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i].ID != tt.want[i].ID || !bytes.Equal(got[i].Bytes, tt.want[i].Bytes) {
					t.Errorf("key %d = %q, want %q", i, got[i].ID, tt.want[i].ID)
				}
			}
			again, err := ParseKeys(FormatKeys(got))
			if err != nil {
				t.Fatalf("ParseKeys(FormatKeys): %v", err)
			}
			if FormatKeys(again) != FormatKeys(got) {
				t.Errorf("FormatKeys round trip changed the keys")
			}
		})
	}
}

func TestParseKeysErrors(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x6b}, 16))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x7c}, 33))
	badB64 := "Zm9v!!c2VjcmV0*&^bWF0ZXJpYWw"
	tests := []struct {
		name     string
		spec     string
		wantMsg  string   // must appear in the error
		material []string // must never appear in the error
	}{
		{"empty", "", "no encryption keys", nil},
		{"white space only", " \n\t", "no encryption keys", nil},
		{"bad base64", "k1:" + badB64, `key "k1": key is not valid base64`, []string{badB64, "c2VjcmV0", "bWF0ZXJpYWw"}},
		{"16-byte key", "k1:" + short, `key "k1": key decodes to 16 bytes, want 32`, []string{short, short[:8]}},
		{"33-byte key", "k1:" + long, `key "k1": key decodes to 33 bytes, want 32`, []string{long, long[:8]}},
		{"empty key", "k1:", `key "k1": key is empty`, nil},
		{"duplicate kid", "k1:" + good + ",k1:" + good, `key "k1": duplicate key ID`, []string{good, good[:8]}},
		{"kid with space", "k 1:" + good, "entry 1: key ID must match", []string{good, good[:8]}},
		{"kid with slash", "k1:" + good + ",k/2:" + good, "entry 2: key ID must match", []string{good, good[:8]}},
		{"kid too long", strings.Repeat("k", 33) + ":" + good, "entry 1: key ID must match", []string{good}},
		{"empty kid", ":" + good, "entry 1: key ID must match", []string{good, good[:8]}},
		{"missing colon is a bare key", good, `entry 1: missing ":"`, []string{good, good[:8]}},
		{"trailing comma", "k1:" + good + ",", "entry 2 is empty", []string{good}},
		{"key material in kid slot", good + ":k1", "entry 1: key ID must match", []string{good, good[:8]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeys(tt.spec)
			if err == nil {
				t.Fatalf("ParseKeys(%q) = %d keys, want error", tt.spec, len(keys))
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			for _, m := range tt.material {
				if strings.Contains(err.Error(), m) {
					t.Errorf("error %q leaks key material %q", err, m)
				}
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey("k1")
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	b, err := GenerateKey("k2")
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if d := cmp.Diff(map[string]any{"id": "k1", "bytes": keySize}, map[string]any{"id": a.ID, "bytes": len(a.Bytes)}); d != "" {
		t.Errorf("GenerateKey (-want +got):\n%s", d)
	}
	if bytes.Equal(a.Bytes, b.Bytes) {
		t.Error("two generated keys are equal")
	}
	if bytes.Equal(a.Bytes, make([]byte, keySize)) {
		t.Error("generated key is all zeros")
	}
	got, err := ParseKeys(FormatKeys([]Key{a, b}))
	if err != nil {
		t.Fatalf("ParseKeys(FormatKeys): %v", err)
	}
	if d := cmp.Diff([]Key{a, b}, got); d != "" {
		t.Errorf("FormatKeys/ParseKeys did not round-trip generated keys (-want +got):\n%s", d)
	}

	for _, id := range []string{"", "k 1", "k:1", "k,1", strings.Repeat("x", 33)} {
		t.Run("invalid "+id, func(t *testing.T) {
			if _, err := GenerateKey(id); err == nil {
				t.Errorf("GenerateKey(%q) succeeded, want error", id)
			}
		})
	}
}

func TestKeyRedactsMaterial(t *testing.T) {
	k := fixedKey(t, "k1", 0xab)
	encoded := base64.StdEncoding.EncodeToString(k.Bytes)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("key", "key", k)
	outputs := map[string]string{
		"%v":  fmt.Sprintf("%v", k),
		"%+v": fmt.Sprintf("%+v", k),
		"%#v": fmt.Sprintf("%#v", k),
		//lint:ignore S1025 the test checks what the %s verb prints
		"%s":   fmt.Sprintf("%s", k),
		"ptr":  fmt.Sprintf("%v", &k),
		"slog": logged.String(),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			if !strings.Contains(out, "k1") {
				t.Errorf("output %q does not name the key", out)
			}
			for _, leak := range []string{encoded, encoded[:8], "171", "ab ab", "0xab", "\xab"} {
				if strings.Contains(out, leak) {
					t.Errorf("output %q leaks key material %q", out, leak)
				}
			}
		})
	}
}
