package portal

import (
	"html"
	"net/url"
	"regexp"
	"strings"
)

// The portal's text formatting, converted inside idbridge so that no third
// party ever sees a customer's text: a Markdown subset (**bold**, *italics*
// or _italics_, `code`, [links](https://…), "- " and "1. " lists, ```
// code blocks```) becomes the Jira wiki markup that JSM's servicedeskapi
// stores for descriptions and comments; and the wiki markup JSM answers with
// is shown as HTML built from the same few constructs, everything else as
// plain, escaped text.

// MaxTextBytes bounds one description or comment.
const MaxTextBytes = 32 << 10

var (
	orderedItem   = regexp.MustCompile(`^\s{0,3}[0-9]{1,3}[.)]\s+(.*)$`)
	unorderedItem = regexp.MustCompile(`^\s{0,3}[-*+]\s+(.*)$`)
	mdLink        = regexp.MustCompile(`\[([^\[\]\n]{1,200})\]\(([^()\s]+)\)`)
)

// ToWiki converts the Markdown subset to Jira wiki markup.
func ToWiki(md string) string {
	md = strings.ReplaceAll(strings.ReplaceAll(md, "\r\n", "\n"), "\r", "\n")
	var out []string
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				code = append(code, strings.ReplaceAll(lines[i], "{code}", "{ code}"))
			}
			out = append(out, "{code}", strings.Join(code, "\n"), "{code}")
			continue
		}
		if m := unorderedItem.FindStringSubmatch(line); m != nil {
			out = append(out, "* "+inlineToWiki(m[1]))
			continue
		}
		if m := orderedItem.FindStringSubmatch(line); m != nil {
			out = append(out, "# "+inlineToWiki(m[1]))
			continue
		}
		out = append(out, escapeLineStart(inlineToWiki(line)))
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

// escapeLineStart keeps a line that is plain text from reading as a wiki
// list, heading, quote or rule.
func escapeLineStart(s string) string {
	t := strings.TrimLeft(s, " ")
	for _, p := range []string{"* ", "# ", "- ", "bq. ", "----"} {
		if strings.HasPrefix(t, p) {
			return `\` + s
		}
	}
	if len(t) > 2 && t[0] == 'h' && t[1] >= '1' && t[1] <= '6' && t[2] == '.' {
		return `\` + s
	}
	return s
}

// inlineToWiki converts one line's inline formatting; text between is
// escaped so it never reads as wiki markup.
func inlineToWiki(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		switch {
		case s[0] == '`':
			if end := strings.IndexByte(s[1:], '`'); end >= 0 {
				code := s[1 : 1+end]
				b.WriteString("{{" + strings.NewReplacer("{", `\{`, "}", `\}`).Replace(code) + "}}")
				s = s[end+2:]
				continue
			}
		case strings.HasPrefix(s, "**"):
			if end := strings.Index(s[2:], "**"); end > 0 {
				b.WriteString("*" + inlineToWiki(s[2:2+end]) + "*")
				s = s[end+4:]
				continue
			}
		case s[0] == '*' || s[0] == '_':
			mark := s[0]
			if end := strings.IndexByte(s[1:], mark); end > 0 && s[1] != ' ' {
				b.WriteString("_" + inlineToWiki(s[1:1+end]) + "_")
				s = s[end+2:]
				continue
			}
		case s[0] == '[':
			if loc := mdLink.FindStringSubmatchIndex(s); loc != nil && loc[0] == 0 {
				text, target := s[loc[2]:loc[3]], s[loc[4]:loc[5]]
				if safeURL(target) {
					b.WriteString("[" + escapeWiki(text) + "|" + strings.ReplaceAll(target, "|", "%7C") + "]")
				} else {
					b.WriteString(escapeWiki(s[:loc[1]]))
				}
				s = s[loc[1]:]
				continue
			}
		}
		b.WriteString(escapeWiki(s[:1]))
		s = s[1:]
	}
	return b.String()
}

// escapeWiki escapes the characters that start wiki markup.
func escapeWiki(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '_', '{', '}', '[', ']', '|', '^', '~', '+', '?', '!', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func safeURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "https", "http":
		return u.Host != ""
	case "mailto":
		return u.Opaque != ""
	}
	return false
}

// ToHTML renders wiki markup as HTML made only of p, br, strong, em, code,
// pre, ul, ol, li and a (http, https, mailto; rel=noopener noreferrer
// nofollow); every other character is escaped text.
func ToHTML(wiki string) string {
	wiki = strings.ReplaceAll(wiki, "\r\n", "\n")
	var b strings.Builder
	lines := strings.Split(wiki, "\n")
	list := ""
	closeList := func() {
		if list != "" {
			b.WriteString("</" + list + ">")
			list = ""
		}
	}
	var para []string
	flush := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + strings.Join(para, "<br>") + "</p>")
			para = nil
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "{code") || strings.HasPrefix(t, "{noformat"):
			flush()
			closeList()
			end := "{code}"
			if strings.HasPrefix(t, "{noformat") {
				end = "{noformat}"
			}
			var code []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != end; i++ {
				code = append(code, lines[i])
			}
			b.WriteString("<pre><code>" + html.EscapeString(strings.Join(code, "\n")) + "</code></pre>")
		case strings.HasPrefix(t, "* ") || strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "# "):
			flush()
			kind := "ul"
			if t[0] == '#' {
				kind = "ol"
			}
			if list != kind {
				closeList()
				b.WriteString("<" + kind + ">")
				list = kind
			}
			b.WriteString("<li>" + inlineToHTML(strings.TrimSpace(t[2:])) + "</li>")
		case t == "":
			flush()
			closeList()
		default:
			closeList()
			if len(t) > 3 && t[0] == 'h' && t[1] >= '1' && t[1] <= '6' && t[2] == '.' {
				t = strings.TrimSpace(t[3:])
				flush()
				b.WriteString("<p><strong>" + inlineToHTML(t) + "</strong></p>")
				continue
			}
			para = append(para, inlineToHTML(line))
		}
	}
	flush()
	closeList()
	return b.String()
}

// inlineToHTML renders a line's inline wiki markup.
func inlineToHTML(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		switch {
		case s[0] == '\\' && len(s) > 1:
			b.WriteString(html.EscapeString(s[1:2]))
			s = s[2:]
			continue
		case strings.HasPrefix(s, "{{"):
			if end := strings.Index(s[2:], "}}"); end >= 0 {
				b.WriteString("<code>" + html.EscapeString(strings.NewReplacer(`\{`, "{", `\}`, "}").Replace(s[2:2+end])) + "</code>")
				s = s[end+4:]
				continue
			}
		case s[0] == '*' || s[0] == '_':
			mark := s[0]
			if end := strings.IndexByte(s[1:], mark); end > 0 && s[1] != ' ' && s[end] != '\\' {
				tag := "strong"
				if mark == '_' {
					tag = "em"
				}
				b.WriteString("<" + tag + ">" + inlineToHTML(s[1:1+end]) + "</" + tag + ">")
				s = s[end+2:]
				continue
			}
		case s[0] == '[':
			if end := strings.IndexByte(s, ']'); end > 0 {
				inner := s[1:end]
				text, target, ok := strings.Cut(inner, "|")
				if !ok {
					text, target = inner, inner
				}
				if safeURL(target) {
					b.WriteString(`<a href="` + html.EscapeString(target) + `" rel="noopener noreferrer nofollow">` + inlineToHTML(text) + "</a>")
					s = s[end+1:]
					continue
				}
			}
		}
		b.WriteString(html.EscapeString(s[:1]))
		s = s[1:]
	}
	return b.String()
}
