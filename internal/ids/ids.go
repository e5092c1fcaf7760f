package ids

import (
	"errors"
	"sync"
	"time"
)

// Bit widths of the node and sequence fields of an id.
const NodeBits, SeqBits = 10, 12

// MaxNode is the largest valid node id.
const MaxNode = 1<<NodeBits - 1

const (
	timeBits  = 63 - NodeBits - SeqBits // 41
	maxSeq    = 1<<SeqBits - 1
	maxMillis = 1<<timeBits - 1
	timeShift = NodeBits + SeqBits
)

// Epoch is the instant from which id timestamps are counted.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrNodeRange is returned by New for a node id outside 0..MaxNode.
var ErrNodeRange = errors.New("ids: node id out of range")

// Option configures a Generator created by New.
type Option func(*Generator)

// WithClock replaces the wall clock (time.Now) used by the generator; meant
// for tests. A nil function keeps time.Now.
func WithClock(now func() time.Time) Option {
	return func(g *Generator) {
		if now != nil {
			g.now = now
		}
	}
}

// WithFloor makes the generator never issue an id whose timestamp (ms since
// Epoch) is <= ms. Use it with the LastMillis persisted by the previous holder
// of a node id when taking that node id over.
func WithFloor(ms int64) Option {
	return func(g *Generator) {
		if ms > g.lastMs {
			g.lastMs = ms
		}
	}
}

// Generator issues ids for one node. Create it with New; it is safe for
// concurrent use.
type Generator struct {
	node  int64
	epoch int64 // Epoch in Unix ms
	now   func() time.Time

	mu     sync.Mutex
	lastMs int64 // logical ms of the last issued id (or floor / -1 before the first)
	seq    int64 // sequence of the last issued id; maxSeq before the first
}

// New returns a generator for the given node id, or ErrNodeRange if node is
// not in 0..MaxNode.
func New(node int64, opts ...Option) (*Generator, error) {
	if node < 0 || node > MaxNode {
		return nil, ErrNodeRange
	}
	g := &Generator{
		node:   node,
		epoch:  Epoch.UnixMilli(),
		now:    time.Now,
		lastMs: -1,
		// With seq at maxSeq, an id issued at a millisecond <= lastMs rolls
		// over to lastMs+1, so the floor itself is never used.
		seq: maxSeq,
	}
	for _, o := range opts {
		o(g)
	}
	return g, nil
}

// Next returns a new id, strictly greater than every id this generator issued
// before. It never blocks on the clock.
//
// Next panics if the logical timestamp would exceed the 41-bit range (after
// the year 2093, or if NextAfter was given a bogus id near math.MaxInt64).
func (g *Generator) Next() int64 {
	now := g.now().UnixMilli() - g.epoch
	g.mu.Lock()
	id := g.nextLocked(now)
	g.mu.Unlock()
	return id
}

// NextAfter returns a new id that is strictly greater than min and than every
// id this generator issued before. If min's timestamp is not behind the
// generator's logical millisecond, the generator jumps to min's millisecond
// plus one, and later ids stay above it.
func (g *Generator) NextAfter(min int64) int64 {
	now := g.now().UnixMilli() - g.epoch
	m := Millis(min)
	g.mu.Lock()
	if m >= g.lastMs {
		// The next id must use a millisecond > m: the clock's if it is
		// ahead, otherwise m+1 with sequence 0 (via the roll-over below).
		g.lastMs, g.seq = m, maxSeq
	}
	id := g.nextLocked(now)
	g.mu.Unlock()
	return id
}

func (g *Generator) nextLocked(now int64) int64 {
	if now > g.lastMs {
		g.lastMs, g.seq = now, 0
	} else if g.seq++; g.seq > maxSeq {
		// The clock is behind the logical ms, or this ms is used up: move
		// the logical ms forward instead of waiting for the clock.
		g.lastMs, g.seq = g.lastMs+1, 0
	}
	if g.lastMs > maxMillis {
		panic("ids: timestamp exceeds 41 bits")
	}
	return g.lastMs<<timeShift | g.node<<SeqBits | g.seq
}

// Node returns the generator's node id.
func (g *Generator) Node() int64 { return g.node }

// LastMillis returns the timestamp (ms since Epoch) of the last issued id, a
// high-water mark to persist and pass to WithFloor when the node id is taken
// over later. Before the first id it returns the floor set by WithFloor, or -1.
func (g *Generator) LastMillis() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.lastMs
}

// Millis returns the timestamp of id in ms since Epoch.
func Millis(id int64) int64 { return id >> timeShift }

// Time returns the timestamp of id as a time.Time (in UTC).
func Time(id int64) time.Time { return Epoch.Add(time.Duration(Millis(id)) * time.Millisecond) }

// NodeOf returns the node id that issued id.
func NodeOf(id int64) int64 { return id >> SeqBits & MaxNode }

// UnixMillis returns the timestamp of id in Unix milliseconds.
func UnixMillis(id int64) int64 { return Epoch.UnixMilli() + Millis(id) }
