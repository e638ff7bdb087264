// Package demo is `idbridge demo`: idbridge on loopback with a fresh
// embedded database, and in the same process a simulated Atlassian site
// made of the stateful fakes the tests use (app/fakeatlassian: the
// install-key server, the site's REST API with users, groups, JSM customers,
// service desks and requests, and the page Jira renders around an app's
// page; app/fakeidp: an OpenID provider for portal sign-in).
//
// The simulated site is just another Atlassian as far as idbridge is
// concerned: idbridge is installed into it through the signed lifecycle
// (RS256 with the fake key server's key, over HTTP), the admin page runs in
// its iframe with the JWTs the site mints with the shared secret, and the
// admin check asks the site. The only things demo chooses that serve never
// does are configuration values a real deployment could set too (the
// install-key server, the trusted product host, the Atlassian API URLs, all
// pointing at the loopback fakes) and, through app.Options, the listener it
// bound and the URL of the stand-in all.js. Nothing here is reachable from
// serve: only main's demo subcommand imports this package.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"idbridge/app"
	"idbridge/app/fakeatlassian"
	"idbridge/app/fakeidp"
	"idbridge/config"
)

// DefaultAddr is where the demo's idbridge listens unless IDBRIDGE_ADDR
// says otherwise: loopback, on a free port.
const DefaultAddr = "127.0.0.1:0"

// AppKey is the demo's Connect app key.
const AppKey = "idbridge-demo"

// The simulated site's people and credentials. Nothing here is a secret:
// they exist only in this process.
const (
	adminEmail     = "admin@demo.example"
	serviceEmail   = "svc-idbridge@demo.example"
	serviceToken   = "ATATT3x-demo-service-account-token"
	customerDomain = "customer.example"
	adminModuleKey = "idbridge-admin"
)

// ErrNotLoopback is the error of an address the demo refuses to listen on.
var ErrNotLoopback = errors.New("the demo listens on loopback only")

// Options is what the demo takes from its caller.
type Options struct {
	// Getenv is the process environment. The demo reads only IDBRIDGE_ADDR
	// (which must be a loopback address), IDBRIDGE_LOG_LEVEL and
	// IDBRIDGE_LOG_FORMAT from it; everything else it sets itself, so a
	// shell set up for serve cannot point the demo at a real database.
	Getenv func(string) string
	// DataDir holds the demo's SQLite database and development key; empty
	// is a new temporary directory, removed when the demo stops.
	DataDir string
	// DescriptorTemplate is atlassian-connect.json.
	DescriptorTemplate []byte
	// Stdout gets the URL to open and what to do there; Stderr the logs.
	Stdout, Stderr io.Writer
}

// CheckAddr refuses a listen address that is not on loopback: a host of
// localhost, 127.0.0.0/8 or ::1 (an empty host, such as ":8080", listens
// on every interface).
func CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("IDBRIDGE_ADDR %q is not a listen address such as 127.0.0.1:8080", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: IDBRIDGE_ADDR %q is not a loopback address (use 127.0.0.1:PORT, [::1]:PORT or localhost:PORT)", ErrNotLoopback, addr)
}

// Run starts the demo, prints the URL to open, and serves until ctx is
// done; then it stops everything and removes its temporary directory.
func Run(ctx context.Context, o Options) error {
	if o.Getenv == nil {
		o.Getenv = func(string) string { return "" }
	}
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	addr := o.Getenv("IDBRIDGE_ADDR")
	if addr == "" {
		addr = DefaultAddr
	}
	if err := CheckAddr(addr); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer ln.Close()
	// localhost could resolve elsewhere: check what was bound.
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		return fmt.Errorf("%w: %s resolved to %s", ErrNotLoopback, addr, ln.Addr())
	}
	baseURL := "http://" + ln.Addr().String()

	dataDir := o.DataDir
	if dataDir == "" {
		dir, err := os.MkdirTemp("", "idbridge-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dataDir = dir
	}

	fake := fakeatlassian.New(fakeatlassian.Options{})
	defer fake.Close()
	site := fake.NewSite(fakeatlassian.SiteOptions{})
	keysURL, err := fake.InstallKeysURL()
	if err != nil {
		return err
	}
	idp := fakeidp.NewOIDC()
	defer idp.Close()

	env := map[string]string{
		"IDBRIDGE_ADDR":                  ln.Addr().String(),
		"IDBRIDGE_BASE_URL":              baseURL,
		"IDBRIDGE_APP_KEY":               AppKey,
		"IDBRIDGE_DATA_DIR":              dataDir,
		"IDBRIDGE_INSTALL_KEYS_URL":      keysURL,
		"IDBRIDGE_TRUSTED_PRODUCT_HOSTS": site.Host(),
		"IDBRIDGE_ATLASSIAN_API_URL":     fake.APIURL(),
		"IDBRIDGE_ATLASSIAN_AUTH_URL":    fake.APIURL(),
		"IDBRIDGE_MARKETPLACE_URL":       fake.APIURL(),
		"IDBRIDGE_LOG_LEVEL":             o.Getenv("IDBRIDGE_LOG_LEVEL"),
		"IDBRIDGE_LOG_FORMAT":            o.Getenv("IDBRIDGE_LOG_FORMAT"),
	}
	if env["IDBRIDGE_LOG_FORMAT"] == "" {
		env["IDBRIDGE_LOG_FORMAT"] = "text"
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, func(string) ([]byte, error) {
		return nil, errors.New("the demo reads no secret files")
	})
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := app.NewLogger(o.Stderr, cfg)

	// The site as it was before idbridge: its admin (the visitor), the
	// service account idbridge will act as, a few people, and JSM.
	adminID := site.AddAccount(fakeatlassian.Account{Email: adminEmail, DisplayName: "Demo Admin"})
	site.AddServiceAccount(fakeatlassian.ServiceAccount{Email: serviceEmail, APIToken: serviceToken, Admin: true})
	grace := site.AddAccount(fakeatlassian.Account{Email: "grace@demo.example", DisplayName: "Grace Hopper", Products: []string{"jira-software"}})
	alan := site.AddAccount(fakeatlassian.Account{Email: "alan@demo.example", DisplayName: "Alan Turing", Products: []string{"jira-software"}})
	site.AddGroup("jira-software-users", adminID, grace, alan)
	site.AddGroup("jira-admins", adminID)
	site.AddAccount(fakeatlassian.Account{Email: "margaret@" + customerDomain, DisplayName: "Margaret Hamilton", Type: fakeatlassian.AccountCustomer})
	desk := site.AddServiceDesk("IT", "IT help")
	site.AddRequestType(desk, fakeatlassian.RequestType{Name: "Report a problem", Description: "Something is broken.", Fields: []fakeatlassian.RequestTypeField{
		{FieldID: "summary", Name: "Summary", Required: true},
		{FieldID: "description", Name: "Description"},
	}})
	org := site.AddOrganization("Customer Inc")

	a, err := app.Open(ctx, cfg, app.Options{
		Log:                log,
		DescriptorTemplate: o.DescriptorTemplate,
		Listener:           ln,
		ConnectJS:          site.Origin() + allJSPath,
	})
	if err != nil {
		return err
	}
	defer a.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- a.Run(runCtx) }()
	select {
	case <-a.WorkersReady():
	case err := <-done:
		return err
	case <-ctx.Done():
		return <-done
	}

	setupErr := func() error {
		client := &http.Client{Timeout: 10 * time.Second}
		if _, err := site.InstallConnectApp(ctx, client, baseURL+"/atlassian-connect.json", adminID); err != nil {
			return fmt.Errorf("install idbridge into the simulated site: %w", err)
		}
		admin := adminAPI{client: client, base: baseURL, site: site, user: adminID}
		// What the visitor would otherwise type on the admin page first.
		if err := admin.do(ctx, http.MethodPut, "/service-account", map[string]any{"kind": "api_token", "email": serviceEmail, "token": serviceToken}, nil); err != nil {
			return err
		}
		if err := admin.do(ctx, http.MethodPost, "/service-account/test", struct{}{}, nil); err != nil {
			return err
		}
		var prov struct {
			BaseURL string `json:"baseUrl"`
		}
		if err := admin.do(ctx, http.MethodGet, "/provisioning", nil, &prov); err != nil {
			return err
		}
		portal := strings.TrimSuffix(prov.BaseURL, "/")
		i := strings.LastIndex(portal, "/")
		if i < 0 || !strings.Contains(portal, "/scim/v2/") {
			return fmt.Errorf("unexpected SCIM base URL %q", prov.BaseURL)
		}
		siteID := portal[i+1:]
		portal = baseURL + "/portal/" + siteID + "/"
		idp.AllowRedirectURI(portal + "oidc/callback")
		if err := admin.do(ctx, http.MethodPut, "/sso", map[string]any{"enabled": true, "allowedDomains": []string{customerDomain},
			"autoCreateCustomers": true, "serviceDeskIds": []string{desk}, "organizationsByDomain": map[string]string{customerDomain: org}}, nil); err != nil {
			return err
		}
		if err := admin.do(ctx, http.MethodPost, "/idps", map[string]any{"name": "Demo identity provider", "protocol": "oidc",
			"oidc": map[string]any{"issuer": idp.URL, "clientId": idp.ClientID, "clientSecret": idp.ClientSecret}}, nil); err != nil {
			return err
		}
		ui := &siteUI{site: site, user: adminID, appBaseURL: baseURL, scimBaseURL: strings.TrimSuffix(prov.BaseURL, "/"),
			portalURL: portal, customerDomain: customerDomain, serviceEmail: serviceEmail, serviceToken: serviceToken, log: log}
		if err := ui.mount(); err != nil {
			return err
		}
		hostURL := site.Origin() + hostPagePath
		fmt.Fprintf(o.Stdout, "idbridge demo: a simulated Atlassian site with idbridge installed, on loopback only.\n\n")
		fmt.Fprintf(o.Stdout, "  Open %s\n\n", hostURL)
		fmt.Fprintf(o.Stdout, "That is the site's page for idbridge's admin page; you are the site's administrator.\n")
		fmt.Fprintf(o.Stdout, "Its \"Simulated site\" link shows the site's users, groups and customers live, with\n")
		fmt.Fprintf(o.Stdout, "curl lines for SCIM and a link to the help-center portal.\n")
		fmt.Fprintf(o.Stdout, "Data: %s. Ctrl-C ends the demo.\n", dataDirNote(o.DataDir, dataDir))
		return nil
	}()
	if setupErr != nil {
		stop()
		<-done
		return setupErr
	}
	return <-done
}

func dataDirNote(asked, used string) string {
	if asked == "" {
		return used + " (temporary, removed at the end)"
	}
	return used
}

// adminAPI calls idbridge's admin API as the site's admin, with a context
// JWT the simulated site mints for each call, as the admin page does.
type adminAPI struct {
	client *http.Client
	base   string
	site   *fakeatlassian.Site
	user   string
}

func (a adminAPI) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	tok, err := a.site.ContextToken(a.user)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+"/api/admin"+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "JWT "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("set up the demo: %s /api/admin%s: %s %s", method, path, res.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
