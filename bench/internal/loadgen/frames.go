package loadgen

import (
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/proto/parleypb"
)

// handle takes one server frame (reader goroutine).
func (c *lconn) handle(f *parleypb.ServerFrame) {
	switch b := f.Body.(type) {
	case *parleypb.ServerFrame_Sent:
		c.sentFrame(b.Sent)
	case *parleypb.ServerFrame_Message:
		c.message(b.Message)
	case *parleypb.ServerFrame_Synced:
		c.syncedFrame(b.Synced)
	case *parleypb.ServerFrame_Error:
		e := b.Error
		if e.GetCode() == "unavailable" && c.resend(e.GetId()) {
			return
		}
		c.w.errorFrame(e.GetCode())
		c.w.fail("%s: error frame %s: %s", c.user, e.GetCode(), e.GetMessage())
		if _, _, ok := c.w.parseID(e.GetId()); ok {
			c.releaseWindow()
		}
	}
}

func (c *lconn) sentFrame(s *parleypb.Sent) {
	w := c.w
	n, at, ok := w.parseID(s.GetId())
	if !ok {
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

func (c *lconn) message(m *parleypb.Message) {
	w := c.w
	raise(&c.maxSeq, m.GetSeq())
	n, at, ok := w.parseID(m.GetClientId())
	switch {
	case !ok:
		return // a message of an earlier run, replayed
	case m.GetFrom() == c.user:
		w.echoes.Add(1)
		return
	}
	dup, caught := c.receive(m.GetFrom(), n)
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
	if caught {
		w.caughtUp(c, now)
	}
}

// receive marks message n of from and reports whether it had it already, and
// whether it is now caught up.
func (c *lconn) receive(from string, n uint64) (dup, caught bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	bs := c.seen[from]
	if bs == nil {
		bs = &bitset{}
		c.seen[from] = bs
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

func (c *lconn) syncedFrame(s *parleypb.Synced) {
	raise(&c.maxSeq, s.GetUpTo())
	if s.GetMore() {
		after := s.GetUpTo()
		_ = c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}})
		return
	}
	c.ackReceived()
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

func (w *worker) parseID(id string) (n uint64, at time.Duration, ok bool) {
	rest, found := strings.CutPrefix(id, w.cfg.RunID+".")
	if !found {
		return 0, 0, false
	}
	ns, ts, found := strings.Cut(rest, ".")
	if !found {
		return 0, 0, false
	}
	n, err1 := strconv.ParseUint(ns, 36, 64)
	t, err2 := strconv.ParseInt(ts, 36, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return n, time.Duration(t), true
}

// resendTries bounds how often one send is repeated after "unavailable".
const resendTries = 5

// resend repeats, after a pause, a send the server answered "unavailable" (not
// committed), with the same id, as PROTOCOL.md tells clients to; false once the send
// has been repeated resendTries times, or if id is not one of ours.
func (c *lconn) resend(id string) bool {
	if _, _, ok := c.w.parseID(id); !ok {
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
		Id: id, To: c.to, Group: c.group, Text: messageText}}}
	time.AfterFunc(time.Duration(try)*200*time.Millisecond, func() {
		if err := c.write(f); err != nil && !c.closing.Load() {
			c.w.werrs.Add(1)
			c.w.fail("%s: writing a repeated send: %v", c.user, err)
		}
	})
	return true
}
