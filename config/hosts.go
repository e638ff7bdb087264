package config

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// hostPattern is one parsed entry of IDBRIDGE_TRUSTED_PRODUCT_HOSTS, or (with
// wildcard false) a host being checked against them.
type hostPattern struct {
	wildcard bool   // "*.host": any proper subdomain of host
	host     string // lower case, no trailing dot, IPv6 without brackets
	ip       bool   // host is an IP literal
	port     string // canonical decimal, or "" for any port
}

// String is the normalized form stored in Config.TrustedProductHosts.
func (p hostPattern) String() string {
	h := p.host
	if p.ip && strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if p.wildcard {
		h = "*." + h
	}
	if p.port != "" {
		h += ":" + p.port
	}
	return h
}

var errHostPattern = errors.New(`is not a host or "*.domain", optionally with ":port"`)

// parseHostPattern parses a trusted-host entry: "*.domain", a DNS name or an
// IP literal, each optionally with ":port" (IPv6 with a port in brackets).
func parseHostPattern(s string) (hostPattern, error) {
	p, err := parseHost(strings.TrimPrefix(s, "*."))
	if err != nil {
		return hostPattern{}, err
	}
	if strings.HasPrefix(s, "*.") {
		if p.ip {
			return hostPattern{}, errHostPattern
		}
		p.wildcard = true
	}
	return p, nil
}

// parseHost parses a concrete "host[:port]" as found in url.URL.Host. It is
// strict on purpose: anything that is not plainly a host name or an IP is
// refused rather than guessed at, since a lenient parse is how
// "evil.com#.atlassian.net" style tricks get through.
func parseHost(s string) (hostPattern, error) {
	s = strings.ToLower(s)
	var host, port string
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return hostPattern{}, errHostPattern
		}
		host, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return hostPattern{}, errHostPattern
			}
			port = port[1:]
			if port == "" {
				return hostPattern{}, errHostPattern
			}
		}
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return hostPattern{}, errHostPattern
		}
	case strings.Count(s, ":") > 1: // bare IPv6, which cannot carry a port
		host = s
	default:
		host = s
		if i := strings.LastIndexByte(s, ':'); i >= 0 {
			host, port = s[:i], s[i+1:]
			if port == "" {
				return hostPattern{}, errHostPattern
			}
		}
	}
	p := hostPattern{}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
			return hostPattern{}, errHostPattern
		}
		p.port = strconv.Itoa(n)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return hostPattern{}, errHostPattern
		}
		p.host, p.ip = a.String(), true
		return p, nil
	}
	host = strings.TrimSuffix(host, ".") // "x.atlassian.net." is the same DNS name
	if !validDNSName(host) {
		return hostPattern{}, errHostPattern
	}
	p.host = host
	return p, nil
}

// validDNSName accepts lower-case letter-digit-hyphen labels. A numeric last
// label is refused because such names are IPv4 addresses in disguise
// ("127.1") that resolvers may treat as loopback.
func validDNSName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.Trim(last, "0123456789") != ""
}

func (p hostPattern) matches(h hostPattern) bool {
	if p.port != "" && p.port != h.port {
		return false
	}
	if p.wildcard {
		return !h.ip && strings.HasSuffix(h.host, "."+p.host)
	}
	return p.ip == h.ip && p.host == h.host
}

func (p hostPattern) loopback() bool {
	if p.ip {
		a, _ := netip.ParseAddr(p.host)
		return a.Unmap().IsLoopback()
	}
	return p.host == "localhost"
}

// IsTrustedHost reports whether host ("name" or "name:port", as in
// url.URL.Host) matches an entry of TrustedProductHosts. "*.atlassian.net"
// matches any proper subdomain, never "atlassian.net" itself or
// "evilatlassian.net"; other entries match exactly. An entry with a port
// matches only that port; one without matches any port. Case and a trailing
// dot are ignored; anything that does not parse as a host is not trusted.
func (c Config) IsTrustedHost(host string) bool {
	h, err := parseHost(host)
	if err != nil {
		return false
	}
	for _, e := range c.TrustedProductHosts {
		p, err := parseHostPattern(e)
		if err == nil && p.matches(h) {
			return true
		}
	}
	return false
}

// AllowsPlainHTTP reports whether a site at host may use plain http: only
// loopback hosts (localhost, 127.0.0.0/8, ::1) that are also trusted, which
// is what tests against local servers need and nothing else does.
func (c Config) AllowsPlainHTTP(host string) bool {
	h, err := parseHost(host)
	return err == nil && h.loopback() && c.IsTrustedHost(host)
}

// isLoopbackHost reports whether a URL's host (url.URL.Host) is loopback;
// unparseable hosts are not.
func isLoopbackHost(host string) bool {
	h, err := parseHost(host)
	return err == nil && h.loopback()
}
