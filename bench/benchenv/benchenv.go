// Package benchenv holds what the load harnesses under bench/ share: a
// fresh PostgreSQL database per run, a loopback listen address, and random
// names. Load tests only ever target loopback addresses.
package benchenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"idbridge/app/secret"
	"idbridge/app/store"
)

// CreateDatabase creates a fresh database named prefix_<random> on the
// server of adminURL and returns its URL and a function that drops it.
func CreateDatabase(ctx context.Context, adminURL, prefix string) (string, func() error, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", nil, errors.New("-pg: want a postgres:// URL")
	}
	name := prefix + "_" + RandomHex(6)
	admin, err := openAdmin(ctx, adminURL)
	if err != nil {
		return "", nil, err
	}
	_, err = admin.SQLDB().ExecContext(ctx, "CREATE DATABASE "+name)
	_ = admin.Close()
	if err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	db := *u
	db.Path = "/" + name
	drop := func() error {
		// DROP DATABASE waits for a checkpoint, which on a machine busy
		// with other databases' writes took over 30 s.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		admin, err := openAdmin(ctx, adminURL)
		if err != nil {
			return err
		}
		defer admin.Close()
		if _, err := admin.SQLDB().ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return db.String(), drop, nil
}

// openAdmin opens the administrative connection through app/store, so that
// bench imports no database driver of its own.
func openAdmin(ctx context.Context, adminURL string) (*store.Store, error) {
	k, err := secret.GenerateKey("admin")
	if err != nil {
		return nil, err
	}
	ring, err := secret.NewRing([]secret.Key{k})
	if err != nil {
		return nil, err
	}
	// CREATE and DROP DATABASE may wait on a busy server longer than a
	// request's statement may.
	st, err := store.Open(ctx, store.Options{Driver: store.Postgres, DSN: adminURL, Ring: ring, MaxOpenConns: 1, StatementTimeout: 2 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL (-pg): %w", err)
	}
	return st, nil
}

// FreeAddr returns addr with port 0 replaced by a port that was free a
// moment ago (the base URL must name the port before app.Open binds it).
// Only loopback IP addresses are accepted.
func FreeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("listen address %q: only a loopback IP address is allowed", addr)
	}
	if port != "0" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// RandomHex returns n random bytes in hex.
func RandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
