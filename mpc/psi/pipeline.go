package psi

import (
	"context"
	"sync"
)

// chunk is one unit of streamed work: a range of the sender's own items,
// or one received message's payload, plus the bytes produced for it.
type chunk struct {
	seq    uint32
	final  bool
	lo, hi int    // range of own items (own streams)
	in     []byte // received payload (peer streams)
	out    []byte
	aux    any // extra per-chunk results
	err    error
	done   chan struct{}
}

// ordered processes chunks from next on workers goroutines and hands them
// to emit in the order next produced them. next returns (nil, nil) at the
// end of the stream. At most 2*workers chunks are in flight, which bounds
// memory however long the stream is. The first error stops everything.
func ordered(ctx context.Context, workers int,
	next func(ctx context.Context) (*chunk, error),
	work func(worker int, c *chunk) error,
	emit func(c *chunk) error,
) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan *chunk)
	queue := make(chan *chunk, 2*workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				c.err = work(w, c)
				close(c.done)
			}
		}()
	}
	prodErr := make(chan error, 1)
	go func() {
		defer close(jobs)
		defer close(queue)
		for {
			c, err := next(ctx)
			if err != nil || c == nil {
				prodErr <- err
				return
			}
			c.done = make(chan struct{})
			select {
			case queue <- c:
			case <-ctx.Done():
				prodErr <- ctx.Err()
				return
			}
			select {
			case jobs <- c:
			case <-ctx.Done():
				close(c.done)
				prodErr <- ctx.Err()
				return
			}
		}
	}()
	var firstErr error
	for c := range queue {
		if firstErr != nil {
			continue
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			firstErr = ctx.Err()
			continue
		}
		if c.err != nil {
			firstErr = c.err
			cancel()
			continue
		}
		if err := emit(c); err != nil {
			firstErr = err
			cancel()
		}
	}
	wg.Wait()
	if err := <-prodErr; err != nil && (firstErr == nil || firstErr == context.Canceled) {
		firstErr = err
	}
	return firstErr
}

// workGroup runs functions concurrently and returns the first error; the
// context passed to them is cancelled as soon as one fails.
type workGroup struct {
	wg     sync.WaitGroup
	once   sync.Once
	err    error
	ctx    context.Context
	cancel context.CancelFunc
}

func newGroup(ctx context.Context) *workGroup {
	g := &workGroup{}
	g.ctx, g.cancel = context.WithCancel(ctx)
	return g
}

func (g *workGroup) Go(f func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(g.ctx); err != nil {
			g.once.Do(func() { g.err = err; g.cancel() })
		}
	}()
}

func (g *workGroup) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
