package loadgen

import (
	"bytes"
	"math"
	"math/bits"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// handle takes one server frame (reader goroutine).
func (c *lconn) handle(f *inFrame) {
	switch f.kind {
	case kindSent:
		c.sentFrame(f.id)
	case kindMessage:
		if c.w.lay.channel {
			c.channelMessage(f)
			return
		}
		c.message(f)
	case kindChannels:
		c.channelsFrame(f)
	case kindSynced:
		c.syncedFrame(f.upTo, f.more)
	case kindReceipt:
		c.w.receiptsIn.Add(1)
	case kindError:
		if string(f.code) == "unavailable" && c.resend(string(f.id)) {
			return
		}
		c.w.errorFrame(string(f.code))
		c.w.fail("%s: error frame %s: %s", c.user, f.code, f.text)
		if _, _, ok := c.w.parseID(f.id); ok {
			c.releaseWindow()
		}
	}
}

func (c *lconn) sentFrame(id []byte) {
	w := c.w
	n, at, ok := w.parseID(id)
	if !ok {
		return
	}
	if n == 0 && w.lay.channel { // the end marker
		w.ch.markerAcked.Store(true)
		return
	}
	c.mu.Lock()
	had := c.acked.set(n)
	c.mu.Unlock()
	if had {
		return // the same answer again
	}
	now := c.now()
	w.sentHist.Record(now - at)
	w.acked.Add(1)
	w.expected.Add(c.fanout)
	raise(&w.lastActivity, uint64(now))
	c.releaseWindow()
}

func (c *lconn) message(m *inFrame) {
	w := c.w
	raise(&c.maxSeq, m.seq)
	n, at, ok := w.parseID(m.clientID)
	switch {
	case !ok:
		return // a message of an earlier run, replayed
	case string(m.from) == c.user:
		w.echoes.Add(1)
		return
	}
	dup, caught := c.receive(m.from, n)
	if dup {
		w.dups.Add(1)
		return
	}
	now := c.now()
	if !c.track { // a storm's messages were sent long before: their latency means nothing
		w.delivHist.Record(now - at)
	}
	w.delivered.Add(1)
	raise(&w.lastActivity, uint64(now))
	if every := w.cfg.ReadEvery; every > 0 {
		c.acknowledge(m, every)
	}
	if caught {
		w.caughtUp(c, now)
	}
}

// receive marks message n of from and reports whether it had it already, and
// whether it is now caught up.
func (c *lconn) receive(from []byte, n uint64) (dup, caught bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bs := c.seen[string(from)] // no allocation: the conversion is only a key
	if bs == nil {
		bs = &bitset{}
		c.seen[string(from)] = bs
	}
	if bs.set(n) {
		return true, false
	}
	c.got++
	return false, c.checkCaught()
}

// checkCaught (c.mu held) marks a tracked connection caught up once it has
// every message it wants.
func (c *lconn) checkCaught() bool {
	if !c.track || c.caught || c.got < c.want {
		return false
	}
	c.caught = true
	return true
}

func (w *worker) caughtUp(c *lconn, now time.Duration) {
	w.caught.Add(1)
	w.catchHist.Record(now - w.trafficStart)
	w.ownHist.Record(now - c.dialAt)
}

func (c *lconn) syncedFrame(upTo uint64, more bool) {
	raise(&c.maxSeq, upTo)
	// The writes go off the poller's goroutine, which must never wait on a socket.
	if more {
		after := upTo
		go func() {
			_ = c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}})
		}()
		return
	}
	go c.ackReceived()
	c.mu.Lock()
	caught := c.checkCaught()
	c.mu.Unlock()
	if caught {
		c.w.caughtUp(c, c.now())
	}
	c.syncOnce.Do(func() { close(c.synced) })
}

// ackedSet is a copy of the own message numbers answered sent.
func (c *lconn) ackedSet() bitset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked.clone()
}

// seenFrom is a copy of the message numbers received from user.
func (c *lconn) seenFrom(user string) bitset {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bs := c.seen[user]; bs != nil {
		return bs.clone()
	}
	return nil
}

func (c *lconn) releaseWindow() {
	if c.window != nil {
		select {
		case <-c.window:
		default:
		}
	}
}

// raise sets a to v if v is larger.
func raise(a *atomic.Uint64, v uint64) {
	for {
		m := a.Load()
		if v <= m || a.CompareAndSwap(m, v) {
			return
		}
	}
}

// clientID is "<run>.<n>.<ns since the worker's base>", in base 36.
func (w *worker) clientID(n uint64, at time.Duration) string {
	return w.cfg.RunID + "." + strconv.FormatUint(n, 36) + "." + strconv.FormatInt(int64(at), 36)
}

// parseID reads a client id of this run (see clientID) without allocating.
func (w *worker) parseID(id []byte) (n uint64, at time.Duration, ok bool) {
	run := w.cfg.RunID
	if len(id) < len(run)+1 || string(id[:len(run)]) != run || id[len(run)] != '.' {
		return 0, 0, false
	}
	rest := id[len(run)+1:]
	dot := bytes.IndexByte(rest, '.')
	if dot < 0 {
		return 0, 0, false
	}
	n, ok1 := parseBase36(rest[:dot])
	t, ok2 := parseBase36(rest[dot+1:])
	if !ok1 || !ok2 || t > math.MaxInt64 {
		return 0, 0, false
	}
	return n, time.Duration(t), true
}

// parseBase36 parses what strconv.FormatUint(v, 36) writes.
func parseBase36(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 13 { // 36^13 > 2^64: longer cannot fit
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d uint64
		switch {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'z':
			d = uint64(c-'a') + 10
		default:
			return 0, false
		}
		hi, lo := bits.Mul64(v, 36)
		if hi != 0 || lo > math.MaxUint64-d {
			return 0, false
		}
		v = lo + d
	}
	return v, true
}

// resendTries bounds how often one send is repeated after "unavailable".
const resendTries = 5

// resend repeats, after a pause, a send the server answered "unavailable" (not
// committed), with the same id, as PROTOCOL.md tells clients to; false once the send
// has been repeated resendTries times, or if id is not one of ours.
func (c *lconn) resend(id string) bool {
	if _, _, ok := c.w.parseID([]byte(id)); !ok {
		return false
	}
	c.mu.Lock()
	if c.resends == nil {
		c.resends = map[string]int{}
	}
	c.resends[id]++
	try := c.resends[id]
	c.mu.Unlock()
	if try > resendTries {
		return false
	}
	c.w.resent.Add(1)
	f := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
		Id: id, To: c.to, Group: c.group, Channel: c.channel, Text: c.textOf([]byte(id))}}}
	time.AfterFunc(time.Duration(try)*200*time.Millisecond, func() {
		if err := c.write(f); err != nil && !c.closing.Load() {
			c.w.werrs.Add(1)
			c.w.fail("%s: writing a repeated send: %v", c.user, err)
		}
	})
	return true
}

// ackReq is one acknowledgement a recipient owes: received up to seq, and, when
// conv is set, read up to the message msgID.
type ackReq struct {
	c     *lconn
	seq   uint64
	msgID uint64
	conv  string
}

// acknowledge queues the acknowledgements of message m (poller goroutine, c.rmu
// held): received for every message, read for every every-th. The writes go to
// the worker's acknowledger: the poller must never wait on a socket. A queue
// that is full drops the acknowledgement and counts it.
func (c *lconn) acknowledge(m *inFrame, every int) {
	a := ackReq{c: c, seq: m.seq}
	c.gotN++
	if c.gotN%every == 0 {
		a.msgID, a.conv = m.msgID, convid.DirectID(c.user, string(m.from))
	}
	c.w.acksPending.Add(1)
	select {
	case c.w.acks <- a:
	default:
		c.w.acksPending.Add(-1)
		c.w.acksDropped.Add(1)
	}
}

// acknowledger writes the queued acknowledgements until done is closed.
func (w *worker) acknowledger(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case a := <-w.acks:
			if a.c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{
				Received: &parleypb.Received{UpTo: a.seq}}}) == nil {
				w.acksOut.Add(1)
			}
			if a.conv != "" && a.c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Read{
				Read: &parleypb.Read{Conversation: a.conv, UpTo: int64(a.msgID)}}}) == nil {
				w.readsOut.Add(1)
			}
			w.acksPending.Add(-1)
		}
	}
}
