package storetest

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"idbridge/app/store"
)

// Proxy is a TCP proxy in front of the test PostgreSQL server that can make
// the database unavailable the way a restart does: Down cuts every open
// connection and answers each new one with PostgreSQL's own "the database
// system is starting up" (FATAL, SQLSTATE 57P03) before closing it; Up
// forwards again. Stores opened behind it with OpenBehindProxy see what an
// application sees during a restart.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// OpenBehindProxy opens a fresh PostgreSQL store whose connections go
// through a Proxy; it skips the test when PostgreSQL is not configured (or
// fails under CI=true, as Backends does).
func OpenBehindProxy(tb testing.TB, opts ...Option) (*store.Store, *Proxy) {
	tb.Helper()
	admin := PostgresURL(tb)
	u, err := url.Parse(admin)
	if err != nil || u.Host == "" {
		tb.Fatalf("%s: a URL with a host is needed for the proxy", EnvDatabaseURL)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	schema := createSchema(tb, admin)
	u.Host = ln.Addr().String()
	dsn, err := withSearchPath(u.String(), schema)
	if err != nil {
		tb.Fatal(err)
	}
	o, _ := resolve(tb, &opened{stores: map[*store.Store]openedStore{}}, opts)
	return open(tb, &opened{stores: map[*store.Store]openedStore{}}, store.Postgres, dsn, o), p
}

// Down cuts every connection and refuses new ones as a starting server does.
func (p *Proxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// Up lets connections through again.
func (p *Proxy) Up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.Down()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		if !down {
			p.conns[c] = struct{}{}
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			if down {
				refuseStarting(c)
				return
			}
			p.forward(c)
		}()
	}
}

func (p *Proxy) forward(c net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		_ = c.Close()
	}()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		_ = s.Close()
		return
	}
	p.conns[s] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, s)
		p.mu.Unlock()
		_ = s.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); _ = s.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); _ = c.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// refuseStarting reads the client's startup packet (after declining SSL or
// GSS encryption) and answers as a PostgreSQL server that is starting up.
func refuseStarting(c net.Conn) {
	defer c.Close()
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		code := binary.BigEndian.Uint32(hdr[4:])
		if n < 8 || n > 1<<16 {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(n-8)); err != nil {
			return
		}
		if code == 80877103 || code == 80877104 { // SSLRequest, GSSENCRequest
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
			continue
		}
		break
	}
	var fields []byte
	for _, f := range []struct {
		t byte
		v string
	}{{'S', "FATAL"}, {'V', "FATAL"}, {'C', "57P03"}, {'M', "the database system is starting up"}} {
		fields = append(fields, f.t)
		fields = append(fields, f.v...)
		fields = append(fields, 0)
	}
	fields = append(fields, 0)
	msg := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(msg[1:], uint32(4+len(fields)))
	_, _ = c.Write(append(msg, fields...))
}
