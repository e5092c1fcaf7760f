package soak

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// A session is one simulated user: a goroutine that keeps a WebSocket open
// (connect, sync, serve, reconnect), a reader per WebSocket, and for senders a
// generator of messages at the user's rate.

type kind int

const (
	kindDM kind = iota
	kindGroup
	kindSlow
)

func (k kind) String() string { return [...]string{"dm", "group", "slow"}[k] }

// user is a simulated user's fixed part.
type user struct {
	idx        int
	name       string
	kind       kind
	token      string
	home       int // the node it prefers (0-based)
	enc        wire.Encoding
	to         string   // dm: the partner
	group      string   // group: the group it posts to
	convs      []string // the conversations whose messages its queue gets
	reconnects bool     // closes its connection now and then
	quiet      bool     // slow: writes nothing during its slow spells
	rate       float64  // sends/s
}

// sendRec is one message a session sends (under its client id, until answered).
type sendRec struct {
	id      string
	conv    string    // the conversation it goes to
	at      time.Time // the first attempt
	wrote   time.Time // the last write
	writes  int
	retryAt time.Time // when an unavailable or rate_limited answer asks to send again
	msgID   int64     // from sent; 0 = unanswered
}

type session struct {
	r *run
	u *user

	mu      sync.Mutex
	pending map[string]*sendRec
	sends   []*sendRec
	next    int
	pos     uint64 // the highest seq read
	ackPos  uint64 // the highest received upTo written
	conn    *client.Conn
	node    int
	live    bool // the current connection's sync reached the end
	liveAt  time.Time
	resync  bool // the server asked for a sync (error unavailable without id)
}

func newSession(r *run, u *user) *session {
	return &session{r: r, u: u, pending: map[string]*sendRec{}}
}

// why a connection ended.
type endReason int

const (
	endLost    endReason = iota // the server closed it, or it broke
	endSlow                     // closed with 1013: reconnect to the same node
	endPlanned                  // this user's periodic reconnect
	endRehome                   // back to the home node
	endStop                     // the run is over
)

// readTimeout: a connection silent this long is taken for dead (a ping goes out
// every pingEvery, and its pong comes back).
const (
	readTimeout = 60 * time.Second
	pingEvery   = 15 * time.Second
	liveFastFor = 10 * time.Second // a slow reader reads at full speed this long between its slow spells
	slowRcvBuf  = 4096
)

// run keeps the user connected until the run stops it.
func (s *session) run(ctx context.Context) {
	node, fails := s.u.home, 0
	for {
		c, err := s.dial(ctx, node)
		if err != nil {
			if s.stopped(ctx) {
				return
			}
			s.r.ctr.dialFailures.Add(1)
			fails++
			node = s.r.nextNode(node)
			if !s.sleep(ctx, backoff(fails)) {
				return
			}
			continue
		}
		fails = 0
		switch s.serve(ctx, c, node) {
		case endStop:
			return
		case endPlanned:
			if !s.sleep(ctx, time.Duration(rand.Int64N(int64(s.r.cfg.OfflineMax)+1))) {
				return
			}
			node = s.r.preferred(s.u.home)
		case endRehome:
			node = s.u.home
		case endSlow:
			if !s.sleep(ctx, backoff(0)) {
				return
			}
		case endLost:
			node = s.r.nextNode(node)
			if !s.sleep(ctx, backoff(0)) {
				return
			}
		}
	}
}

// backoff is 100 ms doubled per failure up to 3 s, ±20 %.
func backoff(fails int) time.Duration {
	d := 100 * time.Millisecond << min(fails, 5)
	d = min(d, 3*time.Second)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (s *session) stopped(ctx context.Context) bool {
	select {
	case <-s.r.stopAll:
		return true
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// sleep waits d; false if the run stopped meanwhile.
func (s *session) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.r.stopAll:
		return false
	case <-ctx.Done():
		return false
	}
}

func (s *session) dial(ctx context.Context, node int) (*client.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	s.r.ctr.dials.Add(1)
	rcvbuf := 0
	if s.u.kind == kindSlow {
		rcvbuf = slowRcvBuf
	}
	return client.DialWith(ctx, s.r.cfg.nodeURL(node), s.u.token, s.u.enc, client.DialOptions{NetDial: rcvbufDial(rcvbuf)})
}

// serve runs one connection: sync from the position, send what is unanswered,
// then heartbeats, acknowledgements and resends until it ends.
func (s *session) serve(ctx context.Context, c *client.Conn, node int) endReason {
	done := make(chan error, 1)
	go s.read(c, done)
	now := time.Now()
	s.mu.Lock()
	after := s.pos
	s.conn, s.node, s.live, s.resync = c, node, false, false
	resend := s.unanswered()
	for _, rec := range resend {
		rec.writes++
		rec.wrote, rec.retryAt = now, time.Time{}
	}
	s.mu.Unlock()
	s.r.online.Add(1)
	defer s.r.online.Add(-1)
	if c.Write(syncFrame(after)) != nil {
		c.Reset()
	}
	for _, rec := range resend {
		if rec.writes > 1 {
			s.r.ctr.resendReconnect.Add(1)
		}
		s.writeSend(c, rec)
	}

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var planned, rehome <-chan time.Time
	if s.u.reconnects && !s.r.draining.Load() {
		f := 0.5 + rand.Float64()
		planned = time.After(time.Duration(f * float64(s.r.cfg.ReconnectEvery)))
	}
	lastPing := now
	end := func(how func() error, r endReason) endReason {
		_ = how()
		<-done
		s.detach()
		return r
	}
	for {
		select {
		case err := <-done:
			s.detach()
			if s.u.kind == kindSlow {
				s.r.slowEnded(s.u, node, err, time.Since(now), c.BytesRead())
			}
			return s.lost(err, node)
		case now := <-tick.C:
			if s.hushed(now) {
				continue
			}
			s.tick(c, now)
			if now.Sub(lastPing) >= pingEvery {
				lastPing = now
				if c.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}}) != nil {
					c.Reset()
				}
			}
			if rehome == nil && node != s.u.home && !s.r.draining.Load() && s.r.nodes.up(s.u.home) {
				rehome = time.After(30*time.Second + time.Duration(rand.Int64N(int64(60*time.Second))))
			}
		case <-planned:
			if s.r.draining.Load() {
				continue
			}
			s.r.ctr.planned.Add(1)
			if rand.IntN(2) == 0 {
				return end(c.Close, endPlanned)
			}
			return end(c.Reset, endPlanned)
		case <-rehome:
			if s.r.draining.Load() || !s.r.nodes.up(s.u.home) {
				rehome = nil
				continue
			}
			s.r.ctr.rehomes.Add(1)
			return end(c.Close, endRehome)
		case <-s.r.stopAll:
			s.ack(c)
			return end(c.Close, endStop)
		case <-ctx.Done():
			return end(c.Reset, endStop)
		}
	}
}

// hushed tells whether a quiet slow reader is in a slow spell: it writes nothing
// then (no received, no ping).
func (s *session) hushed(now time.Time) bool {
	if !s.u.quiet {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.live && s.r.cfg.slowSpell(now.Sub(s.liveAt))
}

// lost counts why a connection ended by itself.
func (s *session) lost(err error, node int) endReason {
	code := closeCode(err)
	s.r.ctr.lost(code)
	if code == 0 {
		s.r.ctr.dropsOn[node].Add(1)
	}
	if code == 1013 {
		return endSlow
	}
	return endLost
}

func (s *session) detach() {
	s.mu.Lock()
	s.conn, s.live = nil, false
	s.mu.Unlock()
}

// unanswered lists the pending sends in the order they were made (mu held).
func (s *session) unanswered() []*sendRec {
	out := make([]*sendRec, 0, len(s.pending))
	for _, rec := range s.pending {
		out = append(out, rec)
	}
	slices.SortFunc(out, func(a, b *sendRec) int { return a.at.Compare(b.at) })
	return out
}

// tick resends what is due, acknowledges what was read, and syncs again when
// the server asked for it.
func (s *session) tick(c *client.Conn, now time.Time) {
	var due []*sendRec
	s.mu.Lock()
	for _, rec := range s.pending {
		retry := !rec.retryAt.IsZero() && !now.Before(rec.retryAt)
		timeout := rec.retryAt.IsZero() && now.Sub(rec.wrote) >= s.r.cfg.ResendAfter
		if retry || timeout {
			if retry {
				s.r.ctr.resendRetry.Add(1)
			} else {
				s.r.ctr.resendTimeout.Add(1)
			}
			rec.writes++
			rec.wrote, rec.retryAt = now, time.Time{}
			due = append(due, rec)
		}
	}
	resync, after := s.resync, s.pos
	s.resync = false
	s.mu.Unlock()
	for _, rec := range due {
		s.writeSend(c, rec)
	}
	if resync && c.Write(syncFrame(after)) != nil {
		c.Reset()
	}
	s.ack(c)
}

// ack writes received up to the position, when it moved.
func (s *session) ack(c *client.Conn) {
	s.mu.Lock()
	up := s.pos
	moved := up > s.ackPos
	if moved {
		s.ackPos = up
	}
	s.mu.Unlock()
	if moved && c.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: up}}}) != nil {
		c.Reset()
	}
}

func syncFrame(after uint64) *parleypb.ClientFrame {
	return &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}}
}

// generate makes the user's messages at its rate (exponential gaps) until the
// traffic ends; a message made while the window is full is skipped.
func (s *session) generate(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		t.Reset(time.Duration(rand.ExpFloat64() / s.u.rate * float64(time.Second)))
		select {
		case <-t.C:
			s.newSend()
		case <-s.r.sendStop:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *session) newSend() {
	now := time.Now()
	s.mu.Lock()
	if len(s.pending) >= s.r.cfg.Window {
		s.mu.Unlock()
		s.r.ctr.skipped.Add(1)
		return
	}
	s.next++
	rec := &sendRec{id: "m" + strconv.Itoa(s.next), conv: s.u.convs[0], at: now, wrote: now}
	s.pending[rec.id] = rec
	s.sends = append(s.sends, rec)
	c := s.conn
	if c != nil {
		rec.writes = 1
	}
	s.mu.Unlock()
	s.r.ctr.attempted.Add(1)
	if c != nil {
		s.writeSend(c, rec)
	}
}

func (s *session) writeSend(c *client.Conn, rec *sendRec) {
	size := 64
	if s.u.kind == kindGroup {
		size = s.r.cfg.GroupText
	}
	send := &parleypb.Send{Id: rec.id, To: s.u.to, Group: s.u.group, Text: messageText(rec.at, size)}
	if c.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: send}}) != nil {
		c.Reset() // the reader ends, and serve with it
	}
}

// pendingCount is how many sends wait for their sent.
func (s *session) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}
