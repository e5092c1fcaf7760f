package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// An op is one append (or other write) that rides in a shared transaction. queue adds
// its statements to the batch and captures their results; done is called once the
// transaction has committed (err nil) or failed. key names the rows it locks (their
// stream, or their own key); a commit queues its ops in key order, so that
// concurrent commits take row locks in one order and never deadlock.
type op struct {
	key   string
	queue func(b *pgx.Batch)
	done  func(err error)
}

// committer is the group commit: committer goroutines each take whatever ops are
// waiting (up to max), run them as one pipelined transaction and report to each.
// Under load a commit carries many grains' appends; when idle an op commits at once
// (or after delay, when set).
type committer struct {
	pool  *pgxpool.Pool
	ops   chan op
	max   int
	delay time.Duration
	wg    sync.WaitGroup
	once  sync.Once
}

func startCommitter(pool *pgxpool.Pool, o Options) *committer {
	c := &committer{pool: pool, ops: make(chan op, 4096), max: o.BatchMax, delay: o.BatchDelay}
	if c.max <= 0 {
		c.max = 512
	}
	n := o.Committers
	if n <= 0 {
		n = 4
	}
	for range n {
		c.wg.Add(1)
		go c.loop()
	}
	return c
}

// submit queues o and waits for its commit. The wait ends early with ctx.
func (c *committer) submit(ctx context.Context, o op) error {
	res := make(chan error, 1)
	inner := o.done
	o.done = func(err error) {
		if inner != nil {
			inner(err)
		}
		res <- err
	}
	select {
	case c.ops <- o:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *committer) stop() {
	c.once.Do(func() { close(c.ops) })
	c.wg.Wait()
}

func (c *committer) loop() {
	defer c.wg.Done()
	batch := make([]op, 0, c.max)
	for first := range c.ops {
		batch = append(batch[:0], first)
		batch = c.gather(batch)
		err := c.commit(batch)
		for _, o := range batch {
			o.done(err)
		}
	}
}

// gather adds the ops already waiting, and with a delay, those arriving within it.
func (c *committer) gather(batch []op) []op {
	var deadline <-chan time.Time
	if c.delay > 0 {
		t := time.NewTimer(c.delay)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < c.max {
		select {
		case o, ok := <-c.ops:
			if !ok {
				return batch
			}
			batch = append(batch, o)
			continue
		default:
		}
		if deadline == nil {
			return batch
		}
		select {
		case o, ok := <-c.ops:
			if !ok {
				return batch
			}
			batch = append(batch, o)
		case <-deadline:
			return batch
		}
	}
	return batch
}

func (c *committer) commit(ops []op) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("beginning commit: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	slices.SortStableFunc(ops, func(a, b op) int { return strings.Compare(a.key, b.key) })
	b := &pgx.Batch{}
	for _, o := range ops {
		o.queue(b)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("appending: %w", mapErr(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("committing: %w", mapErr(err))
	}
	return nil
}
