package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// echoItem is a test item: the batch answers it with its own n doubled
// and records which batch it rode in.
type echoItem struct {
	batchItem
	n, answer, batch int
}

// recorder is a batch function that records each batch's items and can be
// held: a held batch waits until release is closed.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	started chan int // receives a batch's size when it starts
	release chan struct{}
}

func newRecorder() *recorder {
	return &recorder{started: make(chan int, 100), release: make(chan struct{})}
}

func (r *recorder) run(ctx context.Context, batch []*echoItem) {
	r.mu.Lock()
	k := len(r.batches)
	ns := make([]int, len(batch))
	for i, it := range batch {
		ns[i] = it.n
	}
	r.batches = append(r.batches, ns)
	r.mu.Unlock()
	r.started <- len(batch)
	<-r.release
	for _, it := range batch {
		it.answer, it.batch = 2*it.n, k
		it.finish(nil)
	}
}

func (r *recorder) snapshot() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *coalescer[T]) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

func (c *coalescer[T]) busy() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

func TestCoalescerRunsALoneRequestAtOnce(t *testing.T) {
	r := newRecorder()
	close(r.release)
	c := newCoalescer(1, 8, r.run)
	it := &echoItem{n: 21}
	if err := c.do(context.Background(), it); err != nil {
		t.Fatal(err)
	}
	if it.answer != 42 {
		t.Fatalf("answer %d, want 42", it.answer)
	}
	if got := r.snapshot(); len(got) != 1 || !slices.Equal(got[0], []int{21}) {
		t.Fatalf("batches %v, want one batch of the one request", got)
	}
	if c.busy() != 0 {
		t.Fatalf("%d slots still taken after the batch", c.busy())
	}
}

// Requests that arrive while every slot is busy ride together in the next
// batch, in arrival order, each with its own answer; the batch size is
// bounded.
func TestCoalescerBatchesWhatQueuesBehindABusySlot(t *testing.T) {
	r := newRecorder()
	c := newCoalescer(1, 3, r.run)
	ctx := context.Background()
	var wg sync.WaitGroup
	items := make([]*echoItem, 6)
	for i := range items {
		items[i] = &echoItem{n: i}
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = c.do(ctx, items[0]) }()
	if n := <-r.started; n != 1 {
		t.Fatalf("first batch has %d items, want 1", n)
	}
	for i := 1; i < len(items); i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.do(ctx, items[i]) }()
		waitFor(t, "the request to queue", func() bool { return c.queued() == i })
	}
	close(r.release)
	wg.Wait()
	want := [][]int{{0}, {1, 2, 3}, {4, 5}}
	if got := r.snapshot(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches %v, want %v", got, want)
	}
	for _, it := range items {
		if it.answer != 2*it.n {
			t.Errorf("item %d answered %d", it.n, it.answer)
		}
	}
	waitFor(t, "the slot to be freed", func() bool { return c.busy() == 0 })
}

// With two slots, two batches run at once: a second request does not wait
// for the first.
func TestCoalescerUsesEverySlot(t *testing.T) {
	r := newRecorder()
	c := newCoalescer(2, 8, r.run)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.do(context.Background(), &echoItem{n: i}) }()
		<-r.started
	}
	if c.busy() != 2 {
		t.Fatalf("%d slots busy, want 2", c.busy())
	}
	close(r.release)
	wg.Wait()
}

// A request whose context ends while it waits returns its context's error
// at once; the batch still answers the others.
func TestCoalescerWaiterGivesUp(t *testing.T) {
	r := newRecorder()
	c := newCoalescer(1, 8, r.run)
	first := &echoItem{n: 1}
	done := make(chan error, 1)
	go func() { done <- c.do(context.Background(), first) }()
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- c.do(ctx, &echoItem{n: 2}) }()
	other := &echoItem{n: 3}
	otherDone := make(chan error, 1)
	waitFor(t, "the request to queue", func() bool { return c.queued() == 1 })
	go func() { otherDone <- c.do(context.Background(), other) }()
	waitFor(t, "the second request to queue", func() bool { return c.queued() == 2 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled request returned %v, want context.Canceled", err)
	}
	close(r.release)
	if err := <-done; err != nil || first.answer != 2 {
		t.Fatalf("first: %v, answer %d", err, first.answer)
	}
	if err := <-otherDone; err != nil || other.answer != 6 {
		t.Fatalf("other: %v, answer %d", err, other.answer)
	}
}

// A batch function that panics or forgets an item does not leave anyone
// waiting, and the slot goes on serving.
func TestCoalescerAnswersEveryItem(t *testing.T) {
	calls := 0
	c := newCoalescer(1, 8, func(ctx context.Context, batch []*echoItem) {
		calls++
		switch calls {
		case 1:
			panic("boom")
		case 2:
			return // answers nobody
		}
		for _, it := range batch {
			it.answer = it.n
			it.finish(nil)
		}
	})
	err := c.do(context.Background(), &echoItem{n: 1})
	if err == nil || !strings.Contains(err.Error(), "panicked: boom") {
		t.Fatalf("after a panic: %v", err)
	}
	if err := c.do(context.Background(), &echoItem{n: 2}); !errors.Is(err, errBatchUnanswered) {
		t.Fatalf("after a batch that answered nobody: %v", err)
	}
	it := &echoItem{n: 3}
	if err := c.do(context.Background(), it); err != nil || it.answer != 3 {
		t.Fatalf("the slot did not recover: %v, %d", err, it.answer)
	}
	if c.busy() != 0 {
		t.Fatalf("%d slots still taken", c.busy())
	}
}

// Under concurrent load every request gets its own answer (run with -race).
func TestCoalescerConcurrentAnswers(t *testing.T) {
	c := newCoalescer(2, 16, func(ctx context.Context, batch []*echoItem) {
		time.Sleep(50 * time.Microsecond)
		for _, it := range batch {
			it.answer = 2 * it.n
			it.finish(nil)
		}
	})
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				it := &echoItem{n: g*1000 + i}
				if err := c.do(context.Background(), it); err != nil || it.answer != 2*it.n {
					errs <- "wrong answer"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}
