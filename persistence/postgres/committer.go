package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/internal/metrics"
)

// An opKind names one kind of write. A commit writes all its ops of one kind with a
// single statement (see writers), kinds in this order.
type opKind int

const (
	kindConversation opKind = iota // a conversation append and its queue ranges (arg *convWrite)
	kindCursor                     // a device cursor moved, and its delivered receipts (arg *cursorWrite)
	kindRead                       // a conversation read up to a message (arg *readWrite)
	kindLastSeen                   // a user's last-seen time moved (arg *lastSeenWrite)
	kindPresence                   // a user came online or went offline (arg *presenceWrite)
	kindChannelRead                // a channel member's read position moved (arg *channelReadWrite)
	numKinds
)

// An op is one write that rides in a shared transaction. key names what it writes
// (its stream, or its own key): two ops with one key go to successive statements;
// locks are the stream rows it must hold (a conversation append's recipients'
// queues), locked in key order before anything is written; arg carries
// the write's input and, once the commit has run, its output; done is called once,
// when the transaction has committed (err nil) or failed.
type op struct {
	kind   opKind
	key    string
	locks  []string
	arg    interface{ reset() }
	done   func(err error)
	queued time.Time // when it was submitted
}

// ErrClosed is returned for writes submitted after the store closed.
var ErrClosed = errors.New("postgres: store closed")

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

	mu     sync.RWMutex // held for reading while submitting, for writing to close
	closed bool
}

// startCommitter starts a group commit of its own (lane names it in the backlog
// gauge) with o.Committers transactions in flight at most.
func startCommitter(pool *pgxpool.Pool, o Options, lane string) *committer {
	c := &committer{met: o.Metrics, pool: pool, ops: make(chan op, 4096), max: o.BatchMax, delay: o.BatchDelay}
	if c.max <= 0 {
		c.max = 512
	}
	n := o.Committers
	if n <= 0 {
		n = 1
	}
	for range n {
		c.wg.Add(1)
		go c.loop()
	}
	c.met.GaugeFunc("parley_commit_backlog", "Writes waiting for a committer.", map[string]string{"lane": lane},
		func() float64 { return float64(len(c.ops)) })
	return c
}

// submit queues o; o.done is called once it has committed or failed, on a committer
// goroutine (so it must not block), or at once with ErrClosed after stop.
func (c *committer) submit(o op) {
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		o.done(ErrClosed)
		return
	}
	o.queued = time.Now()
	c.ops <- o
	c.mu.RUnlock()
}

// wait submits o and waits for its commit. The wait ends early with ctx (the op may
// still commit).
func (c *committer) wait(ctx context.Context, o op) error {
	res := make(chan error, 1)
	o.done = func(err error) { res <- err }
	c.submit(o)
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop commits what was submitted, then ends the committer goroutines; later
// submits fail with ErrClosed.
func (c *committer) stop() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.ops)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *committer) loop() {
	defer c.wg.Done()
	batch := make([]op, 0, c.max)
	for first := range c.ops {
		batch = append(batch[:0], first)
		batch = c.gather(batch)
		now := time.Now()
		for _, o := range batch {
			c.met.CommitWait(now.Sub(o.queued))
		}
		c.commitIsolated(batch)
	}
}

// commitIsolated commits ops and reports to each. When the commit fails on bad data
// (SQLSTATE class 22 or 23), ops from other grains must not fail with the one that
// caused it: the batch is split in halves, each committed alone, down to the op
// that fails by itself.
func (c *committer) commitIsolated(ops []op) {
	err := c.commit(ops)
	if err != nil && len(ops) > 1 && isDataError(err) {
		half := len(ops) / 2
		c.commitIsolated(ops[:half:half])
		c.commitIsolated(ops[half:])
		return
	}
	for _, o := range ops {
		o.done(err)
	}
}

// isDataError reports an error raised by the data of a statement (data exception,
// integrity violation) rather than by the server or the connection.
func isDataError(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (strings.HasPrefix(pg.Code, "22") || strings.HasPrefix(pg.Code, "23"))
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
// process to be scheduled and send COMMIT. The error wraps the driver's, so that
// data errors can be told apart.
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

// plan turns a commit's ops into its statements: first the queues' stream rows
// locked in key order, then rounds of one statement per kind. A round holds at most one op per
// (kind, key): a second append to the same stream (two activations of one grain)
// goes to the next round, which runs after the first, as if the two had been
// committed one after the other. It returns the batch and the rows it writes.
func plan(ops []op) (*pgx.Batch, int) {
	slices.SortStableFunc(ops, func(a, b op) int {
		return cmp.Or(cmp.Compare(a.kind, b.kind), strings.Compare(a.key, b.key))
	})
	b := &pgx.Batch{}
	var locked []string
	for _, o := range ops {
		locked = append(locked, o.locks...)
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
