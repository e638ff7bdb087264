package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Coalescing: on PostgreSQL every statement costs a round trip, and on a
// small machine the round trip (a write and a read on each side of the
// socket, and a backend woken up) costs more than the statement. The
// identity providers' hot paths are many small independent statements of
// one shape: "is there a user with this userName?" and "create this user".
// The store answers requests of such a shape together: a request that
// arrives while enough batches of its shape are in flight waits for the
// next batch, which takes everything queued, runs as one statement, and
// hands each request its own answer.
//
// Nothing waits for company: with a free slot a request runs at once, so an
// idle server answers with one ordinary statement and batches form only
// under load, from requests that would otherwise have queued for a
// connection. A batch statement starts after every request in it arrived,
// so each answer reflects the database as of a moment between the request
// and its response: reads see every write acknowledged before they arrived
// (on any replica), and a write is acknowledged only after its batch
// committed.

// How many batches of one shape may run at once, per process. More slots
// mean smaller batches and more round trips; fewer mean waiting behind a
// slow statement. Measured on 2 cores (docs/PERFORMANCE.md): lookups are
// fastest with one slot (batches grow with the load, and PostgreSQL's CPU
// per lookup falls from 136 µs alone to under 30 µs); creates want two, so
// that one batch runs while the other waits for its commit to be flushed.
const (
	lookupSlots = 1
	createSlots = 2
)

// coalescerMaxBatch bounds a batch: the statements take arrays, so this
// bounds their size, not a count of bound parameters.
const coalescerMaxBatch = 128

// batchTimeout bounds one batch statement. It does not run under any one
// request's context: the others in the batch must not fail because one
// client went away.
const batchTimeout = 30 * time.Second

// batchItem is one request's part of a batch: the batch sets err (or the
// answer fields of the type that embeds it) and closes done.
type batchItem struct {
	done chan struct{}
	err  error
}

func (b *batchItem) base() *batchItem { return b }

func (b *batchItem) init() { b.done = make(chan struct{}) }

// finish hands the item its answer; err nil means the embedding type's
// answer fields are set.
func (b *batchItem) finish(err error) {
	b.err = err
	close(b.done)
}

func (b *batchItem) finished() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait waits for the item's batch and returns its error. A request whose
// context ends first returns at once with that error; the batch still runs
// (a write may still commit: the same as a single statement whose caller
// went away).
func (b *batchItem) wait(ctx context.Context) error {
	select {
	case <-b.done:
		return b.err
	default:
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// batched is an item type: a pointer to a struct embedding batchItem.
type batched interface{ base() *batchItem }

// errBatchUnanswered is what an item gets when its batch ended without
// answering it: a bug in the batch function, reported as an internal error.
var errBatchUnanswered = errors.New("store: a batched statement ended without an answer")

// coalescer queues items of one shape and runs them in batches, at most
// slots batches at a time. run answers every item of its batch.
type coalescer[T batched] struct {
	slots int
	max   int
	run   func(ctx context.Context, batch []T)

	mu      sync.Mutex
	queue   []T
	running int
}

func newCoalescer[T batched](slots, max int, run func(ctx context.Context, batch []T)) *coalescer[T] {
	return &coalescer[T]{slots: slots, max: max, run: run}
}

// do queues it and waits for its answer. With a free slot the caller runs
// the batch (it and whatever is queued) itself; otherwise a batch already
// in flight hands it on when it finishes.
func (c *coalescer[T]) do(ctx context.Context, it T) error {
	b := it.base()
	b.init()
	c.mu.Lock()
	c.queue = append(c.queue, it)
	if c.running >= c.slots {
		c.mu.Unlock()
		return b.wait(ctx)
	}
	c.running++
	batch := c.takeLocked()
	c.mu.Unlock()
	c.runBatch(batch)
	// This caller's answer is ready: what queued meanwhile goes on in a
	// goroutine of its own, on this slot.
	if next := c.next(); next != nil {
		go c.drain(next)
	}
	return b.wait(ctx)
}

// drain runs batches on one slot until the queue is empty.
func (c *coalescer[T]) drain(batch []T) {
	for batch != nil {
		c.runBatch(batch)
		batch = c.next()
	}
}

// next takes the next batch for a slot that just finished one, or frees
// the slot when nothing is queued.
func (c *coalescer[T]) next() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		c.running--
		return nil
	}
	return c.takeLocked()
}

func (c *coalescer[T]) takeLocked() []T {
	n := min(len(c.queue), c.max)
	batch := make([]T, n)
	copy(batch, c.queue)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return batch
}

// runBatch runs one batch under its own deadline. Whatever happens in run
// (a panic included), every item is answered and the slot goes on.
func (c *coalescer[T]) runBatch(batch []T) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	defer func() {
		err := errBatchUnanswered
		if r := recover(); r != nil {
			err = fmt.Errorf("store: a batched statement panicked: %v", r)
		}
		for _, it := range batch {
			if b := it.base(); !b.finished() {
				b.finish(err)
			}
		}
	}()
	c.run(ctx, batch)
}
