package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

const password = "loadgen-password"

// messageText is the payload of every message (32 bytes).
const messageText = "loadgen message 0123456789abcde"

// WorkerConfig is the share of one process: its connections, users and rate.
type WorkerConfig struct {
	Worker      int      `json:"worker"`
	URLs        []string `json:"urls"`
	Conns       int      `json:"conns"`
	UsersPrefix string   `json:"usersPrefix"`
	RunID       string   `json:"runId"` // part of every client message id, so that runs never dedupe each other
	Rate        float64  `json:"rate"`  // msgs/s of this worker; 0 = as fast as the window allows
	Window      int      `json:"window"`
	Duration    Dur      `json:"duration"`
	Drain       Dur      `json:"drain"`
	Idle        bool     `json:"idle"`
	SrcIPs      int      `json:"srcIps"`
	SrcOffset   int      `json:"srcOffset"`
	Encoding    string   `json:"encoding"`
	RegisterPar int      `json:"registerPar"`
	DialPar     int      `json:"dialPar"`
}

// Dur is a time.Duration that reads and writes JSON as a Go duration string.
type Dur time.Duration

func (d Dur) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

func (d *Dur) UnmarshalJSON(b []byte) error {
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = Dur(v)
	return err
}

// Phases a worker reports; after each of the first three it waits to be released.
const (
	PhaseRegistered = "registered" // users registered and logged in
	PhaseConnected  = "connected"  // sockets open and synced
	PhaseDrained    = "drained"    // traffic done and drained; Result set
	PhaseClosed     = "closed"     // sockets closed; the worker ends
)

// Progress is a worker's running counters.
type Progress struct {
	ConnsUp   int64     `json:"connsUp"`
	Sent      uint64    `json:"sent"`
	Acked     uint64    `json:"acked"`
	Delivered uint64    `json:"delivered"`
	Errors    uint64    `json:"errors"`
	Delivery  *histJSON `json:"delivery,omitempty"`
}

// WorkerMsg is what a worker reports: a phase, progress, or a failure.
type WorkerMsg struct {
	Phase    string        `json:"phase,omitempty"`
	Progress *Progress     `json:"progress,omitempty"`
	Result   *WorkerResult `json:"result,omitempty"`
	Err      string        `json:"err,omitempty"`
}

// WorkerResult is the outcome of one worker, with raw histograms for merging.
type WorkerResult struct {
	Conns       int               `json:"conns"`
	ConnsUp     int               `json:"connsUp"`
	SetupErrors uint64            `json:"setupErrors"`
	Sent        uint64            `json:"sent"`
	Acked       uint64            `json:"acked"`
	Delivered   uint64            `json:"delivered"`
	Duplicates  uint64            `json:"duplicates"`
	Echoes      uint64            `json:"echoes"`
	Missed      uint64            `json:"missed"` // rate tokens dropped because a connection was still busy
	WriteErrors uint64            `json:"writeErrors"`
	Closes      uint64            `json:"closes"` // connections closed by the server or failed while running
	ErrorFrames map[string]uint64 `json:"errorFrames"`
	ActiveSec   float64           `json:"activeSec"` // traffic start to the last delivery or ack
	SentHist    histJSON          `json:"sentHist"`
	DeliverHist histJSON          `json:"deliverHist"`
	FirstError  string            `json:"firstError,omitempty"`
}

type worker struct {
	cfg   WorkerConfig
	enc   wire.Encoding
	srcs  *SourceIPs
	base  time.Time
	conns []*lconn

	connsUp, setupErrors                                atomic.Int64
	sent, acked, delivered, dups, echoes, missed, werrs atomic.Uint64
	closes, errFrames                                   atomic.Uint64
	lastActivity                                        atomic.Int64 // ns since base
	sentHist, delivHist                                 *Histogram
	mu                                                  sync.Mutex
	errCodes                                            map[string]uint64
	firstErr                                            string
	trafficStart                                        time.Duration
}

type lconn struct {
	w          *worker
	idx        int
	user, peer string
	nc         net.Conn
	src        io.Reader
	wmu        sync.Mutex
	tokens     chan struct{}
	window     chan struct{}
	next       uint64
	recv       []uint64 // bitset of the peer's message numbers seen (reader goroutine only)
	maxSeq     atomic.Uint64
	synced     chan struct{}
	syncOnce   sync.Once
	closing    atomic.Bool
	dead       atomic.Bool
	up         atomic.Bool // counted in connsUp
	readerDone chan struct{}
}

func (w *worker) fail(format string, args ...any) {
	w.mu.Lock()
	if w.firstErr == "" {
		w.firstErr = fmt.Sprintf(format, args...)
	}
	w.mu.Unlock()
}

func (w *worker) userName(i int) string {
	side := "a"
	if i%2 == 1 {
		side = "b"
	}
	return fmt.Sprintf("%s-%d-%d%s", w.cfg.UsersPrefix, w.cfg.Worker, i/2, side)
}

func (w *worker) url(i int) string { return w.cfg.URLs[i%len(w.cfg.URLs)] }

// RunWorker runs one worker's share: it reports each phase through report, then
// waits for release before going on. It returns when its sockets are closed.
func RunWorker(ctx context.Context, cfg WorkerConfig, report func(WorkerMsg), release <-chan struct{}) error {
	enc, err := wire.ParseEncoding(cfg.Encoding)
	if err != nil {
		return err
	}
	if cfg.RegisterPar <= 0 {
		cfg.RegisterPar = 16
	}
	if cfg.DialPar <= 0 {
		cfg.DialPar = 64
	}
	if cfg.Window <= 0 {
		cfg.Window = 8
	}
	w := &worker{cfg: cfg, enc: enc, srcs: NewSourceIPs(cfg.SrcIPs, cfg.SrcOffset), base: time.Now(),
		sentHist: NewHistogram(), delivHist: NewHistogram(), errCodes: map[string]uint64{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer w.closeAll()

	wait := func() error {
		select {
		case _, ok := <-release:
			if !ok {
				return errors.New("loadgen: released with a closed channel")
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// Progress once a second until the end.
	progDone := make(chan struct{})
	var progWG sync.WaitGroup
	progWG.Add(1)
	go func() {
		defer progWG.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p := w.progress()
				report(WorkerMsg{Progress: &p})
			case <-progDone:
				return
			}
		}
	}()
	defer func() { close(progDone); progWG.Wait() }()

	// Each phase report is preceded by fresh progress, so that the parent's line is current.
	phase := func(m WorkerMsg) {
		p := w.progress()
		report(WorkerMsg{Progress: &p})
		report(m)
	}

	tokens, err := w.login(ctx)
	if err != nil {
		return err
	}
	phase(WorkerMsg{Phase: PhaseRegistered})
	if err := wait(); err != nil {
		return err
	}
	w.connect(ctx, tokens)
	phase(WorkerMsg{Phase: PhaseConnected})
	if err := wait(); err != nil {
		return err
	}
	w.traffic(ctx)
	res := w.result()
	phase(WorkerMsg{Phase: PhaseDrained, Result: &res})
	if err := wait(); err != nil {
		return err
	}
	w.closeAll()
	phase(WorkerMsg{Phase: PhaseClosed})
	return nil
}

// login registers (a user that exists already is reused) and logs in every user,
// RegisterPar at a time (bcrypt is expensive).
func (w *worker) login(ctx context.Context) ([]string, error) {
	tokens := make([]string, w.cfg.Conns)
	sem := make(chan struct{}, w.cfg.RegisterPar)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range w.cfg.Conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			user, base := w.userName(i), w.url(i)
			var apiErr *client.APIError
			if err := client.Register(rctx, base, user, password); err != nil && !(errors.As(err, &apiErr) && apiErr.Code == "conflict") {
				failed.Add(1)
				w.fail("registering %s: %v", user, err)
				return
			}
			s, err := client.Login(rctx, base, user, password, "loadgen")
			if err != nil {
				failed.Add(1)
				w.fail("logging in %s: %v", user, err)
				return
			}
			tokens[i] = s.Token
		}()
	}
	wg.Wait()
	w.setupErrors.Add(failed.Load())
	if n := failed.Load(); n == int64(w.cfg.Conns) && n > 0 {
		return nil, fmt.Errorf("loadgen: no user could log in: %s", w.firstErr)
	}
	return tokens, nil
}

// connect dials and syncs every connection, DialPar at a time.
func (w *worker) connect(ctx context.Context, tokens []string) {
	w.conns = make([]*lconn, w.cfg.Conns)
	sem := make(chan struct{}, w.cfg.DialPar)
	var wg sync.WaitGroup
	for i := range w.cfg.Conns {
		if tokens[i] == "" {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := w.dial(ctx, i, tokens[i])
			if err != nil {
				w.setupErrors.Add(1)
				w.fail("connecting %s: %v", w.userName(i), err)
				return
			}
			w.conns[i] = c
		}()
	}
	wg.Wait()
}

func (w *worker) dial(ctx context.Context, i int, token string) (*lconn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u, err := url.Parse(w.url(i))
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Path = "ws", "/v1/ws"
	u.RawQuery = url.Values{"encoding": {w.enc.String()}}.Encode()
	d := ws.Dialer{
		Header:  ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}),
		NetDial: dialer(w.srcs.Next()),
	}
	nc, br, _, err := d.Dial(ctx, u.String())
	if err != nil {
		return nil, err
	}
	c := &lconn{w: w, idx: i, user: w.userName(i), nc: nc, src: nc, synced: make(chan struct{}), readerDone: make(chan struct{})}
	if br != nil {
		c.src = br
	}
	if i%2 == 0 && i+1 < w.cfg.Conns {
		c.peer = w.userName(i + 1)
	} else if i%2 == 1 {
		c.peer = w.userName(i - 1)
	}
	go c.readLoop()
	abort := func(err error) (*lconn, error) {
		c.close()
		<-c.readerDone
		return nil, err
	}
	if err := c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{}}}); err != nil {
		return abort(err)
	}
	select {
	case <-c.synced:
	case <-c.readerDone:
		return abort(errors.New("connection ended before synced"))
	case <-ctx.Done():
		return abort(fmt.Errorf("waiting for synced: %w", ctx.Err()))
	}
	c.up.Store(true)
	w.connsUp.Add(1)
	return c, nil
}

func (c *lconn) write(f *parleypb.ClientFrame) error {
	b, err := wire.EncodeClient(c.w.enc, f)
	if err != nil {
		return err
	}
	op := ws.OpText
	if c.w.enc == wire.Proto {
		op = ws.OpBinary
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return wsutil.WriteClientMessage(c.nc, op, b)
}

type lockedWriter struct{ c *lconn }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.c.wmu.Lock()
	defer l.c.wmu.Unlock()
	return l.c.nc.Write(p)
}

func (c *lconn) readLoop() {
	defer close(c.readerDone)
	control := wsutil.ControlFrameHandler(lockedWriter{c}, ws.StateClientSide)
	rd := wsutil.Reader{Source: c.src, State: ws.StateClientSide, OnIntermediate: control}
	for {
		h, err := rd.NextFrame()
		if err == nil && h.OpCode.IsControl() {
			err = control(h, &rd)
			if err == nil {
				continue
			}
		}
		if err != nil {
			if !c.closing.Load() {
				c.dead.Store(true)
				c.w.closes.Add(1)
				if c.up.Swap(false) {
					c.w.connsUp.Add(-1)
				}
				c.w.fail("%s: connection ended: %v", c.user, err)
			}
			return
		}
		data, err := io.ReadAll(&rd)
		if err != nil {
			continue // the next NextFrame reports the broken socket
		}
		f, err := wire.DecodeServer(c.w.enc, data)
		if err != nil {
			c.w.fail("%s: %v", c.user, err)
			continue
		}
		c.handle(f)
	}
}

func (c *lconn) now() time.Duration { return time.Since(c.w.base) }

func (c *lconn) handle(f *parleypb.ServerFrame) {
	w := c.w
	switch b := f.Body.(type) {
	case *parleypb.ServerFrame_Sent:
		if _, at, ok := w.parseID(b.Sent.GetId()); ok {
			now := c.now()
			w.sentHist.Record(now - at)
			w.acked.Add(1)
			w.lastActivity.Store(int64(now))
			c.releaseWindow()
		}
	case *parleypb.ServerFrame_Message:
		m := b.Message
		c.raiseSeq(m.GetSeq())
		n, at, ok := w.parseID(m.GetClientId())
		switch {
		case !ok:
			// a message of an earlier run, replayed
		case m.GetFrom() == c.user:
			w.echoes.Add(1)
		case m.GetFrom() == c.peer:
			if c.seen(n) {
				w.dups.Add(1)
				return
			}
			now := c.now()
			w.delivHist.Record(now - at)
			w.delivered.Add(1)
			w.lastActivity.Store(int64(now))
		}
	case *parleypb.ServerFrame_Synced:
		s := b.Synced
		c.raiseSeq(s.GetUpTo())
		if s.GetMore() {
			after := s.GetUpTo()
			_ = c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}})
			return
		}
		if up := c.maxSeq.Load(); up > 0 {
			_ = c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: up}}})
		}
		c.syncOnce.Do(func() { close(c.synced) })
	case *parleypb.ServerFrame_Error:
		e := b.Error
		w.errFrames.Add(1)
		w.mu.Lock()
		w.errCodes[e.GetCode()]++
		w.mu.Unlock()
		w.fail("%s: error frame %s: %s", c.user, e.GetCode(), e.GetMessage())
		if _, _, ok := w.parseID(e.GetId()); ok {
			c.releaseWindow()
		}
	}
}

func (c *lconn) raiseSeq(s uint64) {
	for {
		m := c.maxSeq.Load()
		if s <= m || c.maxSeq.CompareAndSwap(m, s) {
			return
		}
	}
}

// seen marks message number n of the peer and reports whether it was marked already.
func (c *lconn) seen(n uint64) bool {
	word := int(n / 64)
	for word >= len(c.recv) {
		c.recv = append(c.recv, make([]uint64, len(c.recv)+16)...)
	}
	bit := uint64(1) << (n % 64)
	if c.recv[word]&bit != 0 {
		return true
	}
	c.recv[word] |= bit
	return false
}

func (c *lconn) releaseWindow() {
	if c.window != nil {
		select {
		case <-c.window:
		default:
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

func (c *lconn) send() bool {
	c.next++
	at := c.now()
	f := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
		Id: c.w.clientID(c.next, at), To: c.peer, Text: messageText,
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

// traffic runs the senders for Duration, then waits up to Drain for every sent
// message to be acknowledged and delivered.
func (w *worker) traffic(ctx context.Context) {
	w.trafficStart = time.Since(w.base)
	w.lastActivity.Store(int64(w.trafficStart))
	var senders []*lconn
	for _, c := range w.conns {
		if c != nil && c.peer != "" && !w.cfg.Idle {
			senders = append(senders, c)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range senders {
		wg.Add(1)
		if w.cfg.Rate > 0 {
			c.tokens = make(chan struct{}, 16)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case <-c.tokens:
						if !c.send() {
							return
						}
					}
				}
			}()
		} else {
			c.window = make(chan struct{}, w.cfg.Window)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					case c.window <- struct{}{}:
						if !c.send() {
							return
						}
					}
				}
			}()
		}
	}
	if w.cfg.Rate > 0 && len(senders) > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.schedule(senders, stop)
		}()
	}
	timer := time.NewTimer(time.Duration(w.cfg.Duration))
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	close(stop)
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	deadline := time.Now().Add(time.Duration(w.cfg.Drain))
	for time.Now().Before(deadline) {
		s := w.sent.Load()
		if w.acked.Load()+w.errFrames.Load() >= s && w.delivered.Load() >= s {
			break
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
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

func (w *worker) progress() Progress {
	d := w.delivHist.Snapshot().toJSON()
	return Progress{
		ConnsUp: w.connsUp.Load(), Sent: w.sent.Load(), Acked: w.acked.Load(), Delivered: w.delivered.Load(),
		Errors: w.errFrames.Load() + w.closes.Load() + w.werrs.Load() + uint64(w.setupErrors.Load()), Delivery: &d,
	}
}

func (w *worker) result() WorkerResult {
	w.mu.Lock()
	codes := make(map[string]uint64, len(w.errCodes))
	for k, v := range w.errCodes {
		codes[k] = v
	}
	first := w.firstErr
	w.mu.Unlock()
	active := time.Duration(w.lastActivity.Load()) - w.trafficStart
	return WorkerResult{
		Conns: w.cfg.Conns, ConnsUp: int(w.connsUp.Load()), SetupErrors: uint64(w.setupErrors.Load()),
		Sent: w.sent.Load(), Acked: w.acked.Load(), Delivered: w.delivered.Load(), Duplicates: w.dups.Load(),
		Echoes: w.echoes.Load(), Missed: w.missed.Load(), WriteErrors: w.werrs.Load(), Closes: w.closes.Load(),
		ErrorFrames: codes, ActiveSec: active.Seconds(),
		SentHist: w.sentHist.Snapshot().toJSON(), DeliverHist: w.delivHist.Snapshot().toJSON(), FirstError: first,
	}
}

// closeAll acknowledges what each connection received (so that a later run with
// the same users does not replay it), then closes every socket (RST: SO_LINGER 0)
// and waits for the readers.
func (w *worker) closeAll() {
	acked := false
	for _, c := range w.conns {
		if c != nil && !c.closing.Load() && !c.dead.Load() && c.maxSeq.Load() > 0 {
			up := c.maxSeq.Load()
			if c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: up}}}) == nil {
				acked = true
			}
		}
	}
	if acked {
		time.Sleep(200 * time.Millisecond) // let the node read them before the resets
	}
	for _, c := range w.conns {
		if c != nil {
			c.close()
		}
	}
	for _, c := range w.conns {
		if c != nil {
			<-c.readerDone
		}
	}
}

func (c *lconn) close() {
	if c.closing.Swap(true) {
		return
	}
	if c.up.Swap(false) {
		c.w.connsUp.Add(-1)
	}
	_ = c.nc.Close()
}
