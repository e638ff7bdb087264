package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Notify sends payload on channel when the transaction commits (PostgreSQL
// NOTIFY semantics), so other replicas drop what they cached. On SQLite
// there are no other replicas and it does nothing.
func (tx *Tx) Notify(channel, payload string) error {
	if tx.s.dialect != Postgres {
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
// returns at once. onReady, when set, runs each time LISTEN is in effect.
func (s *Store) Listen(ctx context.Context, channel string, onEvent func(payload string), onReset, onReady func()) error {
	if s.dialect != Postgres {
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
