package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/metrics"
)

// An opKind names one kind of write. A commit writes all its ops of one kind with a
// single statement (see writers), kinds in this order.
type opKind int

const (
	kindConversation opKind = iota // a conversation stream append (arg *convWrite)
	kindUser                       // a user sync-queue append (arg *userWrite)
	kindOutboxClear                // an outbox row cleared (arg *outboxClear)
	kindCursor                     // a device cursor moved (arg *cursorWrite)
	kindSnapshot                   // a snapshot stored (arg *snapshotWrite)
	numKinds
)

// lockedKinds are the kinds whose key is a row of streams: a commit locks those rows
// first, in one statement and in key order, so that concurrent commits never wait on
// each other in a cycle.
var lockedKinds = [numKinds]bool{kindConversation: true, kindUser: true, kindOutboxClear: true}

// An op is one write that rides in a shared transaction. key names the row it locks
// (its stream, or its own key); arg carries the write's input and, once the commit
// has run, its output; done is called once the transaction has committed (err nil)
// or failed.
type op struct {
	kind opKind
	key  string
	arg  any
	done func(err error)
}

// committer is the group commit: committer goroutines each take whatever ops are
// waiting (up to max) and write them in one transaction of a few statements, one per
// kind of write, whatever the number of streams. Under load a commit carries many
// grains' appends; when idle an op commits at once (or after delay, when set).
type committer struct {
	met   *metrics.Metrics
	pool  *pgxpool.Pool
	ops   chan op
	max   int
	delay time.Duration
	wg    sync.WaitGroup
	once  sync.Once
}

func startCommitter(pool *pgxpool.Pool, o Options) *committer {
	c := &committer{met: o.Metrics, pool: pool, ops: make(chan op, 4096), max: o.BatchMax, delay: o.BatchDelay}
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
	o.done = func(err error) { res <- err }
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

// commit sends a commit's statements in one pipeline, which PostgreSQL runs as one
// implicit transaction (all or nothing): one round trip, where BEGIN, the batch and
// COMMIT took three, and no row lock is held while the server waits for this
// process to be scheduled and send COMMIT.
func (c *committer) commit(ops []op) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	b, rows := plan(ops)
	defer func() { c.met.Commit(time.Since(start), len(ops), rows, err) }()
	if err := c.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("committing: %w", mapErr(err))
	}
	return nil
}

// plan turns a commit's ops into its statements: first the stream rows locked in key
// order, then rounds of one statement per kind. A round holds at most one op per
// (kind, key): a second append to the same stream (two activations of one grain, or
// an append and an outbox clear racing) goes to the next round, which runs after the
// first, as if the two had been committed one after the other.
func plan(ops []op) (*pgx.Batch, int) {
	slices.SortStableFunc(ops, func(a, b op) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), strings.Compare(a.key, b.key))
	})
	b := &pgx.Batch{}
	var locked []string
	for _, o := range ops {
		if lockedKinds[o.kind] {
			locked = append(locked, o.key)
		}
	}
	if len(locked) > 0 {
		slices.Sort(locked)
		b.Queue(`SELECT 1 FROM streams WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, slices.Compact(locked))
	}
	rows := 0
	for _, round := range rounds(ops) {
		for start := 0; start < len(round); {
			end := start + 1
			for end < len(round) && round[end].kind == round[start].kind {
				end++
			}
			rows += writers[round[start].kind](b, round[start:end])
			start = end
		}
	}
	return b, rows
}

// rounds splits ops sorted by (kind, key) into rounds in which each (kind, key)
// occurs once; each round stays sorted.
func rounds(ops []op) [][]op {
	var out [][]op
	r := 0
	for i, o := range ops {
		if i > 0 && o.kind == ops[i-1].kind && o.key == ops[i-1].key {
			r++
		} else {
			r = 0
		}
		if r == len(out) {
			out = append(out, nil)
		}
		out[r] = append(out[r], o)
	}
	return out
}
