package sites

import (
	"context"
	"errors"
	"sync"
)

// flightGroup runs at most one call per key at a time: callers that arrive
// while a call for their key runs wait for it and share its result. (A
// tiny keyed single-flight; golang.org/x/sync is not a direct dependency.)
//
// Callers put the cache generation they read into the key, so that a
// caller that starts after a removal (a reinstall) never shares a load that
// started before it: its key differs, and it starts a load of its own.
type flightGroup[K comparable, V any] struct {
	mu    sync.Mutex
	calls map[K]*flightCall[V]
}

type flightCall[V any] struct {
	done    chan struct{}
	v       V
	err     error
	waiters int // callers sharing the call, besides the one running it (under the group's mu)
}

// errFlightPanicked is what waiters get when the shared call panicked.
var errFlightPanicked = errors.New("shared call panicked")

// do runs fn for key, or waits for the call for key already running, until
// ctx is done. fn runs on behalf of every waiter: it should not depend on
// the cancellation of the first caller's context.
func (g *flightGroup[K, V]) do(ctx context.Context, key K, fn func() (V, error)) (V, error) {
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		c.waiters++
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.v, c.err
		case <-ctx.Done():
			var zero V
			return zero, ctx.Err()
		}
	}
	if g.calls == nil {
		g.calls = make(map[K]*flightCall[V])
	}
	c := &flightCall[V]{done: make(chan struct{}), err: errFlightPanicked}
	g.calls[key] = c
	g.mu.Unlock()

	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.v, c.err = fn()
	return c.v, c.err
}
