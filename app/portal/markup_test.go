package portal

import (
	"strings"
	"testing"
)

func TestToWiki(t *testing.T) {
	cases := []struct{ md, wiki string }{
		{"plain text", "plain text"},
		{"**bold** and *it* and _it_", "*bold* and _it_ and _it_"},
		{"use `a*b{c}`", `use {{a*b\{c\}}}`},
		{"[docs](https://example.com/a|b)", "[docs|https://example.com/a%7Cb]"},
		{"[bad](javascript:alert(1))", `\[bad\](javascript:alert(1))`},
		{"- one\n- two\n1. first\n2) second", "* one\n* two\n# first\n# second"},
		{"```\ncode {code} *x*\n```", "{code}\ncode { code} *x*\n{code}"},
		{"a [link|x] {color:red} !img.png! ^sup^", `a \[link\|x\] \{color:red\} \!img.png\! \^sup\^`},
		{"# not a heading", `\# not a heading`},
		{"h1. not a heading", `\h1. not a heading`},
		{"2 * 3 * 4", `2 \* 3 \* 4`},
		{"line1\r\nline2", "line1\nline2"},
	}
	for _, c := range cases {
		if got := ToWiki(c.md); got != c.wiki {
			t.Errorf("ToWiki(%q) = %q; want %q", c.md, got, c.wiki)
		}
	}
}

func TestToHTML(t *testing.T) {
	cases := []struct{ wiki, html string }{
		{"*bold* _it_ {{code}}", "<p><strong>bold</strong> <em>it</em> <code>code</code></p>"},
		{"[docs|https://example.com/?a=1&b=2]", `<p><a href="https://example.com/?a=1&amp;b=2" rel="noopener noreferrer nofollow">docs</a></p>`},
		{"[x|javascript:alert(1)]", "<p>[x|javascript:alert(1)]</p>"},
		{"<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>"},
		{"* a\n* b\n# c", "<ul><li>a</li><li>b</li></ul><ol><li>c</li></ol>"},
		{"{code}\n<b>x</b>\n{code}", "<pre><code>&lt;b&gt;x&lt;/b&gt;</code></pre>"},
		{`\*not bold\*`, "<p>*not bold*</p>"},
		{"one\ntwo\n\nthree", "<p>one<br>two</p><p>three</p>"},
		{`[<img src=x onerror=alert(1)>|https://e.example]`, `<p><a href="https://e.example" rel="noopener noreferrer nofollow">&lt;img src=x onerror=alert(1)&gt;</a></p>`},
		{"h2. Title", "<p><strong>Title</strong></p>"},
		{"héllo wörld", "<p>héllo wörld</p>"},
	}
	for _, c := range cases {
		if got := ToHTML(c.wiki); got != c.html {
			t.Errorf("ToHTML(%q) = %q; want %q", c.wiki, got, c.html)
		}
	}
}

// TestRoundTrip: what a customer writes comes back as the formatting they
// meant.
func TestRoundTrip(t *testing.T) {
	md := "Hello **team**,\n\nthe *export* fails:\n\n- step `one`\n- step two\n\nSee [the log](https://logs.example/1).\n\n```\npanic: x < y\n```"
	got := ToHTML(ToWiki(md))
	for _, want := range []string{"<strong>team</strong>", "<em>export</em>", "<li>step <code>one</code></li>", `<a href="https://logs.example/1"`, "<pre><code>panic: x &lt; y</code></pre>"} {
		if !strings.Contains(got, want) {
			t.Errorf("round trip lacks %q:\n%s", want, got)
		}
	}
}

func FuzzToHTML(f *testing.F) {
	for _, s := range []string{"*a*", "[x|https://y]", "{code}\nx", "\\", "{{", "_*[|]*_"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := ToHTML(s)
		if strings.Contains(strings.ToLower(out), "<script") || strings.Contains(out, "javascript:\"") {
			t.Fatalf("unsafe output for %q: %s", s, out)
		}
		_ = ToHTML(ToWiki(s))
	})
}
