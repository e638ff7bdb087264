package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"html/template"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"
)

// SAML is a SAML 2.0 identity provider (crewjam/saml's IdP side) on a
// loopback httptest server: /metadata, and /sso taking HTTP-Redirect
// AuthnRequests and answering with an auto-posting form. It learns a
// service provider's metadata by fetching the AuthnRequest's issuer (which
// is idbridge's SP metadata URL).
type SAML struct {
	URL  string
	Cert *x509.Certificate
	Key  *rsa.PrivateKey
	// Now is the IdP's clock; time.Now when nil.
	Now func() time.Time

	server *httptest.Server
	hc     *http.Client

	mu        sync.Mutex
	user      *User
	sps       map[string]*saml.EntityDescriptor
	tamper    func(*saml.Assertion)
	post      func(response *etree.Element) *etree.Element
	sigMethod string
	calls     []string
}

// NewSAML starts a SAML IdP with a fresh RSA key and self-signed
// certificate. Close it when done.
func NewSAML() *SAML {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "fake SAML IdP"},
		NotBefore:    time.Now().Add(-24 * time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &SAML{Cert: cert, Key: key, sps: map[string]*saml.EntityDescriptor{},
		hc: &http.Client{Timeout: 10 * time.Second}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metadata", p.serveMetadata)
	mux.HandleFunc("GET /sso", p.serveSSO)
	mux.HandleFunc("POST /sso", p.serveSSO)
	p.server = httptest.NewServer(mux)
	p.URL = p.server.URL
	return p
}

// Close stops the server.
func (p *SAML) Close() { p.server.Close() }

func (p *SAML) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// MetadataURL is where the IdP's metadata is served.
func (p *SAML) MetadataURL() string { return p.URL + "/metadata" }

// SSOURL is the IdP's HTTP-Redirect single sign-on endpoint.
func (p *SAML) SSOURL() string { return p.URL + "/sso" }

// EntityID is the IdP's entity ID (its metadata URL, as crewjam/saml does).
func (p *SAML) EntityID() string { return p.MetadataURL() }

// CertificateBase64 is the signing certificate's DER in base64.
func (p *SAML) CertificateBase64() string { return base64.StdEncoding.EncodeToString(p.Cert.Raw) }

// SignIn makes u the person signed in at the IdP; nil shows a form.
func (p *SAML) SignIn(u *User) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if u != nil {
		c := *u
		u = &c
	}
	p.user = u
}

// Tamper sets a function that changes every assertion before it is signed.
func (p *SAML) Tamper(fn func(*saml.Assertion)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = fn
}

// PostProcess sets a function that changes every signed Response element
// before it is sent (comments, wrapping, removed signatures) and returns
// the element to send.
func (p *SAML) PostProcess(fn func(response *etree.Element) *etree.Element) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.post = fn
}

// SignWith sets the XML signature method (default RSA-SHA256); use
// dsig.RSASHA1SignatureMethod for a SHA-1 signing IdP.
func (p *SAML) SignWith(method string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sigMethod = method
}

// Calls returns "METHOD path" of every request so far.
func (p *SAML) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *SAML) idp() *saml.IdentityProvider {
	meta, _ := url.Parse(p.MetadataURL())
	sso, _ := url.Parse(p.SSOURL())
	p.mu.Lock()
	method := p.sigMethod
	p.mu.Unlock()
	if method == "" {
		method = dsig.RSASHA256SignatureMethod
	}
	return &saml.IdentityProvider{
		Key: p.Key, Certificate: p.Cert, MetadataURL: *meta, SSOURL: *sso,
		ServiceProviderProvider: spProvider{p}, SignatureMethod: method,
		Clock: dsig.NewFakeClockAt(p.now()),
	}
}

func (p *SAML) serveMetadata(w http.ResponseWriter, r *http.Request) {
	p.record(r)
	out, err := xml.MarshalIndent(p.idp().Metadata(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write(append([]byte(xml.Header), out...))
}

// MetadataXML returns the IdP's metadata document.
func (p *SAML) MetadataXML() string {
	out, _ := xml.MarshalIndent(p.idp().Metadata(), "", "  ")
	return xml.Header + string(out)
}

func (p *SAML) record(r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, r.Method+" "+r.URL.Path)
}

// spProvider finds a service provider by fetching its entity ID, which is
// its metadata URL, once.
type spProvider struct{ p *SAML }

func (s spProvider) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	s.p.mu.Lock()
	ed := s.p.sps[id]
	s.p.mu.Unlock()
	if ed != nil {
		return ed, nil
	}
	u, err := url.Parse(id)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, os.ErrNotExist
	}
	resp, err := s.p.hc.Get(id)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, os.ErrNotExist
	}
	ed, err = samlsp.ParseMetadata(data)
	if err != nil {
		return nil, err
	}
	s.p.mu.Lock()
	s.p.sps[id] = ed
	s.p.mu.Unlock()
	return ed, nil
}

var samlSignInForm = template.Must(template.New("f").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Fake SAML IdP: sign in</title></head>
<body><main><h1>Fake SAML identity provider</h1>
<form method="post" action="/sso?{{.Query}}">
<label for="email">Email</label> <input id="email" name="email" type="email" required>
<label for="name">Name</label> <input id="name" name="name">
<button type="submit">Sign in</button>
</form></main></body></html>`))

var postForm = template.Must(template.New("p").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Fake SAML IdP: continue</title></head>
<body><form method="post" action="{{.URL}}" id="f">
<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">
<input type="hidden" name="RelayState" value="{{.RelayState}}">
<button type="submit" id="continue">Continue</button></form>
<script>document.getElementById('f').submit();</script></body></html>`))

// serveSSO signs the person in (the configured user, or the form's) and
// answers with a form that posts the response to the SP.
func (p *SAML) serveSSO(w http.ResponseWriter, r *http.Request) {
	p.record(r)
	p.mu.Lock()
	user := p.user
	p.mu.Unlock()
	if r.Method == http.MethodPost {
		_ = r.ParseForm()
		if email := strings.TrimSpace(r.PostForm.Get("email")); email != "" {
			user = &User{Email: email, Name: r.PostForm.Get("name"), EmailVerified: true}
		}
		// The AuthnRequest travels in the query of the form's action.
		r2 := r.Clone(r.Context())
		r2.Method = http.MethodGet
		r = r2
	}
	if user == nil {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = samlSignInForm.Execute(w, map[string]any{"Query": template.URL(r.URL.RawQuery)})
		return
	}
	form, err := p.respond(r, *user)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = postForm.Execute(w, form)
}

// Respond plays the browser at the IdP without HTTP: it takes the SP's
// HTTP-Redirect sign-in URL and returns what the auto-posting form would
// send (ACS URL, base64 SAMLResponse, RelayState), for user u.
func (p *SAML) Respond(signInURL string, u User) (saml.IdpAuthnRequestForm, error) {
	r, err := http.NewRequest(http.MethodGet, signInURL, nil)
	if err != nil {
		return saml.IdpAuthnRequestForm{}, err
	}
	return p.respond(r, u)
}

func (p *SAML) respond(r *http.Request, u User) (saml.IdpAuthnRequestForm, error) {
	idp := p.idp()
	req, err := saml.NewIdpAuthnRequest(idp, r)
	if err != nil {
		return saml.IdpAuthnRequestForm{}, fmt.Errorf("parse request: %w", err)
	}
	if err := req.Validate(); err != nil {
		return saml.IdpAuthnRequestForm{}, fmt.Errorf("validate request: %w", err)
	}
	session := &saml.Session{
		ID: randomHex(8), CreateTime: p.now(), ExpireTime: p.now().Add(time.Hour), Index: randomHex(8),
		NameID: u.Email, NameIDFormat: string(saml.EmailAddressNameIDFormat),
		UserEmail: u.Email, UserCommonName: u.Name, UserName: u.Email,
		CustomAttributes: []saml.Attribute{
			{Name: "email", Values: []saml.AttributeValue{{Type: "xs:string", Value: u.Email}}},
			{Name: "displayName", Values: []saml.AttributeValue{{Type: "xs:string", Value: u.Name}}},
		},
	}
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return saml.IdpAuthnRequestForm{}, fmt.Errorf("make assertion: %w", err)
	}
	p.mu.Lock()
	tamper, post := p.tamper, p.post
	p.mu.Unlock()
	if tamper != nil {
		tamper(req.Assertion)
	}
	if err := req.MakeResponse(); err != nil {
		return saml.IdpAuthnRequestForm{}, fmt.Errorf("make response: %w", err)
	}
	if post != nil {
		req.ResponseEl = post(req.ResponseEl)
	}
	doc := etree.NewDocument()
	doc.SetRoot(req.ResponseEl)
	buf, err := doc.WriteToBytes()
	if err != nil {
		return saml.IdpAuthnRequestForm{}, err
	}
	return saml.IdpAuthnRequestForm{
		URL: req.ACSEndpoint.Location, SAMLResponse: base64.StdEncoding.EncodeToString(buf), RelayState: req.RelayState,
	}, nil
}

// SignElement signs el (an Assertion or Response) enveloped with the IdP's
// key, replacing any signature it had: for tests that forge responses.
func (p *SAML) SignElement(el *etree.Element) (*etree.Element, error) {
	RemoveSignatures(el, false)
	ctx, err := dsig.NewSigningContext(p.Key, [][]byte{p.Cert.Raw})
	if err != nil {
		return nil, err
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		return nil, err
	}
	// SignEnveloped puts the signature last; SAML wants it after Issuer.
	// (goxmldsig appends it without making signed its parent, so it is
	// taken off the slice directly.)
	sig := signed.Child[len(signed.Child)-1].(*etree.Element)
	signed.Child = signed.Child[:len(signed.Child)-1]
	at := 0
	for i, c := range signed.Child {
		if e, ok := c.(*etree.Element); ok && e.Tag == "Issuer" {
			at = i + 1
		}
	}
	signed.InsertChildAt(at, sig)
	return signed, nil
}

// RemoveSignatures removes the ds:Signature of el and, when deep, of every
// element inside it.
func RemoveSignatures(el *etree.Element, deep bool) {
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" {
			el.RemoveChild(c)
			continue
		}
		if deep {
			RemoveSignatures(c, true)
		}
	}
}

// Find returns the first element with the local name tag under el (el
// itself included), depth first.
func Find(el *etree.Element, tag string) *etree.Element {
	if el.Tag == tag {
		return el
	}
	for _, c := range el.ChildElements() {
		if f := Find(c, tag); f != nil {
			return f
		}
	}
	return nil
}
