package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notify sends payload on channel when the transaction commits (PostgreSQL
// NOTIFY semantics), so other replicas drop what they cached. On SQLite
// (one process) it is delivered to this process's Listen calls after the
// commit, so that caches may be kept there too.
func (tx *Tx) Notify(channel, payload string) error {
	if tx.s.dialect != Postgres {
		n := note{channel: channel, payload: payload}
		if !tx.inTx {
			tx.s.local.deliver([]note{n})
			return nil
		}
		tx.notes = append(tx.notes, n)
		return nil
	}
	if err := tx.db.Exec(`SELECT pg_notify(?, ?)`, channel, payload).Error; err != nil {
		return fmt.Errorf("notify %s: %w", channel, err)
	}
	return nil
}

// Listen delivers the payloads sent with Notify on channel until ctx is
// done. It holds one dedicated connection and reconnects with backoff when
// it drops; onReset runs whenever notifications may have been missed (at
// every reconnect), so the caller can drop its whole cache. On SQLite it
// hears this process's commits, which are all there are, and never misses
// one. onReady, when set, runs each time it is in effect.
func (s *Store) Listen(ctx context.Context, channel string, onEvent func(payload string), onReset, onReady func()) error {
	if s.dialect != Postgres {
		stop := s.local.add(channel, onEvent)
		defer stop()
		if onReady != nil {
			onReady()
		}
		<-ctx.Done()
		return nil
	}
	backoff := 100 * time.Millisecond
	for {
		err := s.listenOnce(ctx, channel, onEvent, onReady)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("notification listener lost its connection; reconnecting", "channel", channel, "error", err.Error())
		if onReset != nil {
			onReset()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, channel string, onEvent func(string), onReady func()) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return scrubDSN(err, s.dsn)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	if onReady != nil {
		onReady()
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		onEvent(n.Payload)
	}
}

// note is one Notify, delivered in process on SQLite.
type note struct{ channel, payload string }

// localListeners are the Listen calls of this process on SQLite, by
// channel.
type localListeners struct {
	mu   sync.Mutex
	next int
	fns  map[string]map[int]func(string)
}

func (l *localListeners) add(channel string, fn func(string)) (remove func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fns == nil {
		l.fns = map[string]map[int]func(string){}
	}
	if l.fns[channel] == nil {
		l.fns[channel] = map[int]func(string){}
	}
	l.next++
	id := l.next
	l.fns[channel][id] = fn
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.fns[channel], id)
	}
}

// deliver calls the listeners of each note's channel, in order, outside
// the lock.
func (l *localListeners) deliver(notes []note) {
	if len(notes) == 0 {
		return
	}
	for _, n := range notes {
		l.mu.Lock()
		fns := make([]func(string), 0, len(l.fns[n.channel]))
		for _, fn := range l.fns[n.channel] {
			fns = append(fns, fn)
		}
		l.mu.Unlock()
		for _, fn := range fns {
			fn(n.payload)
		}
	}
}
