package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"idbridge/app/store"
	"idbridge/app/store/storetest"
	"idbridge/models"
)

// SQLite's write transactions of one process get the write lock in the
// order they asked for it (store.takeWriteTurn): writers queued behind a
// held transaction commit first in, first out, and a writer that asks again
// at once queues behind them, instead of SQLite's busy handler letting
// whoever polls first win (a flood of one site's creates starved other
// sites' writes). A wait is bounded by the busy timeout: a write that
// starts while the turn is held for longer is refused as unavailable.
func TestSQLiteWritersTakeTurnsInOrder(t *testing.T) {
	t.Parallel()
	b := storetest.Backends(t)[0]
	if b.Name != store.SQLite {
		t.Fatalf("the first backend is %s", b.Name)
	}
	st := b.Open(t, storetest.WithStoreOptions(func(o *store.Options) { o.StatementTimeout = 3 * time.Second }))
	ctx := context.Background()
	write := func(tx *store.Tx) error {
		return store.TxExecRaw(tx, `UPDATE sites SET updated_at = updated_at WHERE id = ?`, "none")
	}

	hold, holding := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := st.InTx(ctx, func(tx *store.Tx) error {
			close(holding)
			<-hold
			return write(tx)
		}); err != nil {
			t.Error(err)
		}
	})
	<-holding
	var mu sync.Mutex
	var order []int
	const n = 6
	for i := range n {
		wg.Go(func() {
			if err := st.InTx(ctx, func(tx *store.Tx) error {
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				return write(tx)
			}); err != nil {
				t.Error(err)
			}
		})
		// The next one asks after this one waits.
		time.Sleep(30 * time.Millisecond)
	}
	close(hold)
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("writers committed in the order %v, not the order they asked", order)
		}
	}
	if len(order) != n {
		t.Fatalf("%d of %d writers committed", len(order), n)
	}

	// Bounded: with the turn held past the busy timeout, a writer is
	// refused as unavailable.
	quick := b.Open(t, storetest.SameDatabase(st), storetest.WithStoreOptions(func(o *store.Options) { o.StatementTimeout = 100 * time.Millisecond }))
	hold, holding = make(chan struct{}), make(chan struct{})
	wg.Go(func() {
		_ = quick.InTx(ctx, func(tx *store.Tx) error {
			close(holding)
			<-hold
			return nil
		})
	})
	<-holding
	start := time.Now()
	err := quick.InTx(ctx, write)
	close(hold)
	wg.Wait()
	if models.ErrorCode(err) != models.CodeUnavailable {
		t.Fatalf("a write while the turn is held past the busy timeout: %v, want unavailable", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the refused write waited %s", took)
	}
}
