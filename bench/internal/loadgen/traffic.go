package loadgen

import (
	"context"
	"sync"
	"time"

	"github.com/parleychat/parley/proto/parleypb"
)

// traffic runs the senders for Duration (idle: holds the connections), then
// waits up to Drain for every sent message to be answered and delivered.
func (w *worker) traffic(ctx context.Context) error {
	w.trafficStart = time.Since(w.base)
	w.lastActivity.Store(uint64(w.trafficStart))
	senders := w.arm(w.cfg.Rate > 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if w.cfg.ReadEvery > 0 {
		done := make(chan struct{})
		defer close(done) // after the drain: acknowledgements go on until then
		go w.acknowledger(done)
	}
	for _, c := range senders {
		wg.Add(1)
		go func() { defer wg.Done(); c.sendLoop(stop, 0) }()
	}
	if w.cfg.Rate > 0 && len(senders) > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); w.schedule(senders, stop) }()
	}
	timer := time.NewTimer(time.Duration(w.cfg.Duration))
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	close(stop)
	wg.Wait()
	switch {
	case ctx.Err() != nil:
	case w.lay.channel:
		w.channelDrain(ctx)
	default:
		waitUntil(ctx, time.Duration(w.cfg.Drain), w.drained)
	}
	return ctx.Err()
}

// drained tells whether every send is answered, every delivery owed arrived,
// and every sender got its own messages back (the server pushes a message to
// the sender's connections too: the result must not be taken before that push),
// and every acknowledgement queued is written.
func (w *worker) drained() bool {
	acked := w.acked.Load()
	return acked+w.errFrames.Load() >= w.sent.Load() && w.delivered.Load() >= w.expected.Load() &&
		w.echoes.Load() >= acked && w.acksPending.Load() == 0
}

// arm sets up the connected users that send: what they send to, how many
// receive each message, and what paces them (rate tokens, or a window of
// unanswered sends).
func (w *worker) arm(paced bool) []*lconn {
	if w.lay.channel {
		return w.armOwner(paced)
	}
	var senders []*lconn
	for i, c := range w.conns {
		peer, g, ok := w.lay.sendsTo(i)
		if c == nil || !ok || w.pushRecipient(i) {
			continue
		}
		if peer >= 0 {
			c.to = w.userName(peer)
		} else {
			c.group = w.groups[g]
		}
		c.fanout = w.receivers(i, peer, g)
		if paced {
			c.tokens = make(chan struct{}, 16)
		} else {
			c.window = make(chan struct{}, w.cfg.Window)
		}
		senders = append(senders, c)
	}
	return senders
}

// receivers is how many deliveries each message of sender i owes: to its
// connected peer or group members; in a storm, to every client of the group
// (they are offline while it sends, and get it when they come back).
func (w *worker) receivers(i, peer, g int) uint64 {
	if peer >= 0 {
		if w.conns[peer] != nil {
			return 1
		}
		return 0
	}
	var n uint64
	for _, m := range w.lay.groups[g] {
		if m != i && (w.conns[m] != nil || w.cfg.Scenario == ScenarioStorm) {
			n++
		}
	}
	return n
}

// sendLoop sends whenever its pacing allows, until stop or (n > 0) n sends.
func (c *lconn) sendLoop(stop <-chan struct{}, n int) {
	for k := 0; n == 0 || k < n; k++ {
		if c.tokens != nil {
			select {
			case <-stop:
				return
			case <-c.tokens:
			}
		} else {
			select {
			case <-stop:
				return
			case c.window <- struct{}{}:
			}
		}
		if !c.send() {
			return
		}
	}
}

func (c *lconn) send() bool {
	c.next++
	at := c.now()
	text := messageText
	if c.channel != "" {
		text = c.w.postText(c.next, at)
	}
	f := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
		Id: c.w.clientID(c.next, at), To: c.to, Group: c.group, Channel: c.channel, Text: text,
	}}}
	if err := c.write(f); err != nil {
		if !c.closing.Load() {
			c.w.werrs.Add(1)
			c.w.fail("%s: writing send: %v", c.user, err)
		}
		return false
	}
	c.w.sent.Add(1)
	return true
}

// textOf is the text of the send with client id id: a channel post's text
// carries its number and send time.
func (c *lconn) textOf(id []byte) string {
	if c.channel == "" {
		return messageText
	}
	n, at, _ := c.w.parseID(id)
	return c.w.postText(n, at)
}

// schedule hands out Rate tokens per second, round robin over the senders.
func (w *worker) schedule(senders []*lconn, stop <-chan struct{}) {
	start := time.Now()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var issued uint64
	next := 0
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		due := uint64(w.cfg.Rate * time.Since(start).Seconds())
		for ; issued < due; issued++ {
			c := senders[next]
			next = (next + 1) % len(senders)
			if c.dead.Load() {
				w.missed.Add(1)
				continue
			}
			select {
			case c.tokens <- struct{}{}:
			default:
				w.missed.Add(1)
			}
		}
	}
}
