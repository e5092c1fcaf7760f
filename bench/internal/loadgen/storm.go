package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The storm: every client connects and syncs (noting its cursor) and goes
// offline; each group's sender posts Messages messages, which the group's
// conversation fans out into every client's sync queue; then every client
// reconnects at once, syncs from its cursor, and is caught up when it has
// every message its sender had answered sent.

// offline notes each client's cursor (the last seq its first sync reached) and
// closes every client's socket.
func (w *worker) offline(context.Context) error {
	clients := span(0, w.lay.clients)
	w.cursors = make([]uint64, w.lay.clients)
	for _, i := range clients {
		if c := w.conns[i]; c != nil {
			w.cursors[i] = c.maxSeq.Load()
		}
	}
	w.closeAll(clients)
	for _, i := range clients {
		w.conns[i] = nil
	}
	return nil
}

// post connects the senders, sends Messages messages from each (a window at a
// time) and waits for every one to be answered, within Duration+Drain.
func (w *worker) post(ctx context.Context) error {
	senders := span(w.lay.clients, w.lay.users)
	if up := w.connect(ctx, senders, nil); up < len(senders) {
		return fmt.Errorf("loadgen: %d of %d group senders could not connect: %s", len(senders)-up, len(senders), w.firstErr)
	}
	bound := time.Duration(w.cfg.Duration + w.cfg.Drain)
	pctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range w.arm(false) {
		wg.Add(1)
		go func() { defer wg.Done(); c.sendLoop(pctx.Done(), w.cfg.Messages) }()
	}
	wg.Wait()
	waitUntil(pctx, bound, func() bool { return w.acked.Load()+w.errFrames.Load() >= w.sent.Load() })
	return ctx.Err()
}

// reconnect connects every client again, all at once (DialPar at a time), each
// syncing from its cursor, and waits until each has caught up or Duration has
// passed since the start.
func (w *worker) reconnect(ctx context.Context) error {
	start := time.Now()
	w.trafficStart = time.Since(w.base)
	w.lastActivity.Store(uint64(w.trafficStart))
	want := make([]int, len(w.lay.groups)) // messages each group's clients must get
	for g, s := range w.lay.senders {
		if c := w.conns[s[0]]; c != nil {
			want[g] = c.ackedSet().count()
		}
	}
	up := w.connect(ctx, span(0, w.lay.clients), func(c *lconn) {
		c.after = &w.cursors[c.idx]
		c.track, c.want = true, want[w.lay.groupOf[c.idx]]
	})
	remaining := time.Duration(w.cfg.Duration) - time.Since(start)
	waitUntil(ctx, remaining, func() bool { return w.caught.Load() >= uint64(up) })
	return ctx.Err()
}
