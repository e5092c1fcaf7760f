package client

import (
	"log/slog"
)

// Delivery of a Client: one dispatcher hands messages to OnMessage in seq order,
// dedupes by message id, and acknowledges with received.

// item is a queued message, or the end of a synced answer (upTo).
type item struct {
	msg    Message
	synced bool
	upTo   uint64
	more   bool
}

func (c *Client) push(it item) {
	c.qmu.Lock()
	c.queue = append(c.queue, it)
	c.qmu.Unlock()
	select {
	case c.qready <- struct{}{}:
	default:
	}
}

// dispatch hands queued messages to OnMessage, drops repeats and moves the cursor.
func (c *Client) dispatch() {
	defer c.wg.Done()
	handled := 0
	for {
		select {
		case <-c.qready:
		case <-c.ctx.Done():
			return
		}
		for {
			c.qmu.Lock()
			batch := c.queue
			c.queue = nil
			c.qmu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, it := range batch {
				if c.ctx.Err() != nil {
					return
				}
				if c.apply(it) {
					handled++
					if handled%c.opts.AckEvery == 0 {
						c.requestAck()
					}
				}
			}
		}
		c.requestAck()
	}
}

// apply handles one item; it reports whether OnMessage was called.
func (c *Client) apply(it item) bool {
	cur, known := c.cursor.Load(), c.cursorKnown.Load()
	if it.synced {
		// Everything of that connection up to upTo was queued before this: the
		// cursor is at least upTo. At the end of the queue (more=false) upTo is at
		// least every seq ever delivered, so an upTo below the cursor means the
		// server's queue ends before it (a made-up cursor, another database):
		// follow the server, or live entries after its end would be taken for
		// repeats.
		if !known || it.upTo > cur {
			c.cursor.Store(it.upTo)
		} else if it.upTo < cur && !it.more {
			c.log.Warn("server queue ends before the client's cursor; moving the cursor back",
				slog.Uint64("cursor", cur), slog.Uint64("end", it.upTo))
			c.cursor.Store(it.upTo)
		}
		c.cursorKnown.Store(true)
		return false
	}
	m := it.msg
	if known && m.Seq <= cur {
		return false // handled already (replayed by a later connection)
	}
	fresh := c.dedupe.add(m.ID) // false: the same message at another seq
	if fresh && c.opts.OnMessage != nil {
		c.opts.OnMessage(m)
	}
	// Only now is the message handled: the cursor (and so the next ack) moves.
	c.cursor.Store(m.Seq)
	c.cursorKnown.Store(true)
	return fresh
}

func (c *Client) requestAck() {
	select {
	case c.ackReq <- struct{}{}:
	default:
	}
}

// idSet remembers the last n ids added.
type idSet struct {
	ids  map[int64]struct{}
	ring []int64
	next int
}

func newIDSet(n int) *idSet {
	return &idSet{ids: make(map[int64]struct{}, n), ring: make([]int64, 0, n)}
}

// add reports whether id is new.
func (s *idSet) add(id int64) bool {
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, id)
	} else {
		delete(s.ids, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % len(s.ring)
	}
	s.ids[id] = struct{}{}
	return true
}
