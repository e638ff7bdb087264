package connect

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

type qshVectorFile struct {
	Vectors []struct {
		Method    string  `json:"method"`
		URL       string  `json:"url"`
		BaseURL   *string `json:"baseUrl"`
		Canonical string  `json:"canonical"`
		QSH       string  `json:"qsh"`
	} `json:"vectors"`
}

type signedURLFile struct {
	Secret string `json:"secret"`
	Tests  []struct {
		Name         string `json:"name"`
		CanonicalURL string `json:"canonicalUrl"`
		SignedURL    string `json:"signedUrl"`
		AddonBaseURL string `json:"addonBaseUrl"`
	} `json:"tests"`
}

func readJSON(tb testing.TB, path string, v any) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

// TestCanonicalRequestVectors checks every vector computed with Atlassian's
// atlassian-jwt library.
func TestCanonicalRequestVectors(t *testing.T) {
	var f qshVectorFile
	readJSON(t, "testdata/qsh-vectors.json", &f)
	if len(f.Vectors) < 45 {
		t.Fatalf("only %d vectors", len(f.Vectors))
	}
	for _, v := range f.Vectors {
		t.Run(v.Method+" "+v.URL, func(t *testing.T) {
			u, err := url.Parse(v.URL)
			if err != nil {
				t.Fatal(err)
			}
			base := ""
			if v.BaseURL != nil {
				bu, err := url.Parse(*v.BaseURL)
				if err != nil {
					t.Fatal(err)
				}
				base = bu.EscapedPath()
			}
			got := CanonicalRequest(v.Method, u, base)
			if got != v.Canonical {
				t.Errorf("canonical = %q, want %q", got, v.Canonical)
			}
			if h := QSH(got); h != v.QSH {
				t.Errorf("qsh = %s, want %s", h, v.QSH)
			}
		})
	}
}

// TestCanonicalRequestJSRandom checks random targets whose canonical form
// Atlassian's JS library computed (testdata/qsh-js-random.gen.js): Node's
// querystring quirks, invalid UTF-8 and UTF-16 sorting included.
func TestCanonicalRequestJSRandom(t *testing.T) {
	var f struct {
		Vectors []struct {
			Method    string `json:"method"`
			URL       string `json:"url"`
			BasePath  string `json:"basePath"`
			Canonical string `json:"canonical"`
		} `json:"vectors"`
	}
	readJSON(t, "testdata/qsh-js-random.json", &f)
	if len(f.Vectors) < 1000 {
		t.Fatalf("only %d vectors", len(f.Vectors))
	}
	for _, v := range f.Vectors {
		// As a server parses a request target.
		u, err := url.ParseRequestURI(v.URL)
		if err != nil {
			t.Fatalf("%q: %v", v.URL, err)
		}
		if got := CanonicalRequest(v.Method, u, v.BasePath); got != v.Canonical {
			t.Errorf("CanonicalRequest(%q, %q, %q) = %q, want %q", v.Method, v.URL, v.BasePath, got, v.Canonical)
		}
	}
}

// TestSignedURLVectors checks Atlassian's Java interoperability vectors:
// each canonical URL, and each token verified with the shared secret.
func TestSignedURLVectors(t *testing.T) {
	var f signedURLFile
	readJSON(t, "testdata/jwt-signed-urls.json", &f)
	if len(f.Tests) < 40 {
		t.Fatalf("only %d tests", len(f.Tests))
	}
	for _, tc := range f.Tests {
		t.Run(tc.Name, func(t *testing.T) {
			u, err := url.Parse(tc.SignedURL)
			if err != nil {
				t.Fatal(err)
			}
			if got := CanonicalRequest("GET", u, tc.AddonBaseURL); got != tc.CanonicalURL {
				t.Errorf("canonical = %q, want %q", got, tc.CanonicalURL)
			}
			r := httptest.NewRequest("GET", tc.SignedURL, nil)
			token, err := TokenFromRequest(r)
			if err != nil {
				t.Fatal(err)
			}
			iss, err := UnverifiedIssuer(token)
			if err != nil {
				t.Fatal(err)
			}
			// The tokens expired in 2014: verify at their iat.
			claims, err := VerifySiteToken(token, iss, []byte(f.Secret), URLBound, r, tc.AddonBaseURL, claimsIAT(t, token))
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			if claims.QSH != QSH(tc.CanonicalURL) {
				t.Errorf("token qsh %s is not the hash of the canonical URL", claims.QSH)
			}
			// Ten minutes later the same token has expired.
			_, err = VerifySiteToken(token, iss, []byte(f.Secret), URLBound, r, tc.AddonBaseURL, claims.ExpiresAt.Add(10*time.Minute))
			wantReason(t, err, ReasonExpired)
		})
	}
}

func claimsIAT(t *testing.T, token string) time.Time {
	t.Helper()
	parts := strings.Split(token, ".")
	var c struct {
		IAT int64 `json:"iat"`
	}
	b, err := decodeSegment(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return time.Unix(c.IAT, 0)
}

// TestCanonicalRequestEdges covers behaviour that the vector files do not,
// each row with the reason it is expected.
func TestCanonicalRequestEdges(t *testing.T) {
	tests := []struct {
		name, method, target, base, want string
	}{
		{"base path is segment-bound", "GET", "/apple/x", "/app", "GET&/apple/x&"},
		{"base path equal to path", "GET", "/app", "/app", "GET&/&"},
		{"base path with trailing slash", "GET", "/app/x/", "/app/", "GET&/x&"},
		{"root base path", "GET", "/x", "/", "GET&/x&"},
		{"only one trailing slash removed", "GET", "/x//", "", "GET&/x/&"},
		{"double slash root", "GET", "//", "", "GET&/&"},
		{"empty base is \"/\", a plain prefix", "GET", "//x", "", "GET&/x&"},
		{"base with trailing slash is a plain prefix", "GET", "/app//x", "/app/", "GET&/x&"},
		{"base with trailing slash does not strip the bare path", "GET", "/app", "/app/", "GET&/app&"},
		{"encoded slash kept raw", "GET", "/a%2Fb", "", "GET&/a%2Fb&"},
		{"encoded ampersand in path kept", "GET", "/a%26b", "", "GET&/a%26b&"},
		{"every ampersand in path encoded", "GET", "/a&b&c", "", "GET&/a%26b%26c&"},
		{"empty pairs skipped", "GET", "/p?&&a=1&&", "", "GET&/p&a=1"},
		{"empty key kept", "GET", "/p?=x&a=1", "", "GET&/p&=x&a=1"},
		{"lone equals kept", "GET", "/p?=", "", "GET&/p&="},
		{"second equals is part of value", "GET", "/p?a=b=c", "", "GET&/p&a=b%3Dc"},
		{"plus in key is a space", "GET", "/p?a+b=1", "", "GET&/p&a%20b=1"},
		{"encoded jwt key is still jwt", "GET", "/p?j%77t=x&a=1", "", "GET&/p&a=1"},
		{"repeated jwt all dropped", "GET", "/p?jwt=1&jwt=2", "", "GET&/p&"},
		{"__proto__ kept, as Java signs it", "GET", "/p?__proto__=1", "", "GET&/p&__proto__=1"},
		{"invalid escape stays literal", "GET", "/p?a=%zz", "", "GET&/p&a=%25zz"},
		{"truncated escape stays literal", "GET", "/p?a=%4", "", "GET&/p&a=%254"},
		{"valid and invalid escapes mixed", "GET", "/p?a=%41%zz", "", "GET&/p&a=A%25zz"},
		{"escaped invalid UTF-8 becomes U+FFFD", "GET", "/p?a=%FF", "", "GET&/p&a=%EF%BF%BD"},
		{"truncated sequence is one U+FFFD", "GET", "/p?a=%E2%9Cx", "", "GET&/p&a=%EF%BF%BDx"},
		{"escaped surrogate is three U+FFFD", "GET", "/p?a=%ED%A0%80", "", "GET&/p&a=%EF%BF%BD%EF%BF%BD%EF%BF%BD"},
		{"raw invalid UTF-8 becomes U+FFFD", "GET", "/p?a=\xff", "", "GET&/p&a=%EF%BF%BD"},
		{"literal non-ASCII truncated in Node's fallback", "GET", "/p?a=%C3%A9%zz\u00e9", "", "GET&/p&a=%C3%A9%25zz%EF%BF%BD"},
		{"literal non-ASCII kept without escapes", "GET", "/p?a=\u00e9%zz", "", "GET&/p&a=%C3%A9%25zz"},
		{"sort is UTF-16 order", "GET", "/p?%EF%BD%81=1&%F0%9F%98%80=2", "", "GET&/p&%F0%9F%98%80=2&%EF%BD%81=1"},
		{"values sorted in UTF-16 order", "GET", "/p?a=%EF%BD%81&a=%F0%9F%98%80", "", "GET&/p&a=%F0%9F%98%80,%EF%BD%81"},
		{"method upper-cased", "delete", "/p", "", "DELETE&/p&"},
		{"fragment ignored by url.Parse", "GET", "/p?a=1#frag", "", "GET&/p&a=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parse := url.Parse
			if strings.HasPrefix(tt.target, "//") {
				// As a server parses a request target: a path, not a host.
				parse = url.ParseRequestURI
			}
			u, err := parse(tt.target)
			if err != nil {
				t.Fatal(err)
			}
			if got := CanonicalRequest(tt.method, u, tt.base); got != tt.want {
				t.Errorf("CanonicalRequest(%q, %q, %q) = %q, want %q", tt.method, tt.target, tt.base, got, tt.want)
			}
		})
	}
}

func TestCanonicalRequestNilURL(t *testing.T) {
	if got := CanonicalRequest("get", nil, ""); got != "GET&/&" {
		t.Errorf("got %q", got)
	}
}

func TestCompareUTF16(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"a", "b", -1},
		{"a", "a", 0},
		{"a", "ab", -1},
		{"Z", "\u00e9", -1},
		{"\U0001F600", "\uFF41", -1}, // surrogate D83D < FF41
		{"\U0001F600", "\U0001F601", -1},
		{"\U0001F600", "\U00020000", -1},
	}
	for _, tt := range tests {
		got := map[string]int{"sign(a, b)": signOf(compareUTF16(tt.a, tt.b)), "sign(b, a)": signOf(compareUTF16(tt.b, tt.a))}
		if d := cmp.Diff(map[string]int{"sign(a, b)": tt.want, "sign(b, a)": -tt.want}, got); d != "" {
			t.Errorf("compareUTF16 of %q and %q (-want +got):\n%s", tt.a, tt.b, d)
		}
	}
}

func signOf(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func FuzzCanonicalRequest(f *testing.F) {
	var v qshVectorFile
	readJSON(f, "testdata/qsh-vectors.json", &v)
	for _, vec := range v.Vectors {
		f.Add(vec.Method, vec.URL, "")
	}
	f.Add("GET", "/p?a=%C3%A9%zz\u00e9&%ED%A0%80=\xff", "/p")
	f.Add("POST", "/wiki/x?a=1&a=2&jwt=x", "/wiki/")
	f.Fuzz(func(t *testing.T, method, target, base string) {
		u, err := url.Parse(target)
		if err != nil {
			return
		}
		c := CanonicalRequest(method, u, base)
		if c != CanonicalRequest(method, u, base) {
			t.Fatal("not deterministic")
		}
		if len(QSH(c)) != 64 {
			t.Fatal("bad hash length")
		}
		// The path and query parts are pure ASCII and never contain a
		// raw separator beyond the two that delimit them.
		rest := c[len(strings.ToUpper(method))+1:]
		path, query, ok := strings.Cut(rest, "&")
		if !ok || !strings.HasPrefix(path, "/") {
			t.Fatalf("bad canonical %q", c)
		}
		for i := 0; i < len(query); i++ {
			if query[i] >= utf8.RuneSelf || query[i] == ' ' || query[i] == '+' {
				t.Fatalf("query part %q not percent-encoded", query)
			}
		}
	})
}
