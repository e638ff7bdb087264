package config

import (
	"strings"
	"testing"
)

func TestIsTrustedHost(t *testing.T) {
	cfg, err := Load(envFrom(map[string]string{
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net,*.jira.com,exact.example.com,localhost:8080,127.0.0.1,[::1]:3000",
	}), noFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"x.atlassian.net", true},
		{"a.b.atlassian.net", true},
		{"X.Atlassian.NET", true},
		{"x.atlassian.net:443", true},
		{"x.atlassian.net.", true},
		{"xn--bcher-kva.atlassian.net", true},
		{"team.jira.com", true},

		{"atlassian.net", false},
		{".atlassian.net", false},
		{"evilatlassian.net", false},
		{"x.evilatlassian.net", false},
		{"x.atlassian.net.evil.com", false},
		{"atlassian.net.evil.com", false},
		{"x.atlassian.network", false},
		{"x.atlassian.net@evil.com", false},
		{"evil.com#.atlassian.net", false},
		{"evil.com/.atlassian.net", false},
		{"evil.com?.atlassian.net", false},
		{"evil.com\\.atlassian.net", false},
		{"evil.com%2e.atlassian.net", false},
		{"evil.com .atlassian.net", false},
		{"x.atlassian.net\n", false},
		{"*.atlassian.net", false},
		{"x..atlassian.net", false},
		{"x.atlassian.net..", false},
		{"-x.atlassian.net", false},
		{"x.atlassian.net:", false},
		{"x.atlassian.net:abc", false},
		{"x.atlassian.net:99999", false},
		{strings.Repeat("a", 64) + ".atlassian.net", false},
		{"", false},

		{"exact.example.com", true},
		{"EXACT.example.com:8443", true},
		{"sub.exact.example.com", false},
		{"example.com", false},

		{"localhost:8080", true},
		{"LOCALHOST:8080", true},
		{"localhost", false},
		{"localhost:8081", false},
		{"localhost:08080", true},

		{"127.0.0.1", true},
		{"127.0.0.1:54321", true},
		{"127.0.0.2", false},
		{"127.1", false},
		{"0x7f.0.0.1", false},

		{"[::1]:3000", true},
		{"[0:0:0:0:0:0:0:1]:3000", true},
		{"[::1]", false},
		{"::1", false},
		{"[::1]:3001", false},
		{"[::1", false},
	}
	for _, tt := range tests {
		if got := cfg.IsTrustedHost(tt.host); got != tt.want {
			t.Errorf("IsTrustedHost(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestAllowsPlainHTTP(t *testing.T) {
	cfg, err := Load(envFrom(map[string]string{
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": "*.atlassian.net,localhost,127.0.0.1:8080,::1,*.localhost,dev.example.com",
	}), noFiles(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"localhost:1234", true},
		{"127.0.0.1:8080", true},
		{"[::1]:9000", true},
		{"::1", true},

		{"127.0.0.1", false},      // listed only with port 8080
		{"127.0.0.1:9090", false}, // idem
		{"127.0.0.2:8080", false}, // loopback but not listed
		{"x.atlassian.net", false},
		{"dev.example.com", false}, // listed but not loopback
		{"app.localhost", false},   // resolves to loopback only by convention
		{"localhost.evil.com", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := cfg.AllowsPlainHTTP(tt.host); got != tt.want {
			t.Errorf("AllowsPlainHTTP(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}

	if defaultConfig(t).AllowsPlainHTTP("localhost:8080") {
		t.Error("default config allows plain http on localhost; the default trusted hosts list no loopback host")
	}
}
