// Package gateway serves Parley's WebSocket endpoint on gobwas/ws: it authenticates
// the upgrade, registers each socket with an epoll poller (no goroutine per idle
// connection), reads ready sockets on a bounded worker pool, decodes frames and
// hands them to the socket's Handler (its connection actor).
//
// Server methods are safe for concurrent use. A socket is read by one worker at a
// time; its writes are serialized by the socket's lock.
package gateway

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/internal/wire"
)

// Config are the gateway's limits and timings.
type Config struct {
	Workers       int
	ReadTimeout   time.Duration // one frame's transfer, from its first byte
	WriteTimeout  time.Duration // one write of a socket that is behind
	MaxFrameBytes int
	// OutboundBytes bounds what may wait to be written to one socket; a socket
	// further behind is closed with 1013. Zero means 1 MiB.
	OutboundBytes int
	// FrameRate (per second) and FrameBurst bound a socket's inbound frames, a
	// token bucket: every frame on the wire takes a token, each fragment of a
	// message and each control frame. A socket past them is closed with 1008.
	FrameRate  float64
	FrameBurst int
	// DeadAfter closes a socket that nothing arrived on for this long (any frame,
	// a ping, a WebSocket ping frame: any byte) with 1001 "no heartbeat"; the
	// handler hears Closed, and the socket's LastHeard says when it went quiet.
	// Zero means never.
	DeadAfter time.Duration
	// IdleAfter tells a socket's handler Idle once only heartbeats (ping frames,
	// `ping`) arrived on it for this long. Zero means never.
	IdleAfter time.Duration
	Metrics   *metrics.Metrics // may be nil
}

// Identity is an authenticated client.
type Identity struct{ User, Device string }

// Authenticate checks a request's token.
type Authenticate func(r *http.Request) (Identity, error)

// Attach creates the handler of a new socket (its connection actor).
type Attach func(s *Socket, id Identity) Handler

// Server is the WebSocket gateway.
type Server struct {
	cfg    Config
	log    *slog.Logger
	auth   Authenticate
	attach Attach
	poll   *poller
	ready  chan readyEvent
	tags   atomic.Int32 // tells the sockets that used the same fd apart
	writes atomic.Int64 // write(2) calls that took frames, for tests

	mu       sync.Mutex
	sockets  map[int]*Socket
	partial  map[*Socket]struct{} // sockets holding the start of a frame
	draining bool
	quit     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// New starts the poller and its workers.
func New(cfg Config, log *slog.Logger, auth Authenticate, attach Attach) (*Server, error) {
	p, err := newPoller()
	if err != nil {
		return nil, err
	}
	if cfg.OutboundBytes <= 0 {
		cfg.OutboundBytes = 1 << 20
	}
	s := &Server{cfg: cfg, log: log, auth: auth, attach: attach, poll: p, ready: make(chan readyEvent, 4096),
		sockets: map[int]*Socket{}, partial: map[*Socket]struct{}{}, quit: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		p.run(func(fd int, tag int32) { s.ready <- readyEvent{fd, tag} })
		close(s.ready)
	}()
	for range max(cfg.Workers, 1) {
		s.wg.Add(1)
		go s.work()
	}
	s.wg.Add(1)
	go s.sweep()
	cfg.Metrics.GaugeFunc("parley_gateway_ready_backlog", "Readable sockets waiting for a gateway worker.", nil,
		func() float64 { return float64(len(s.ready)) })
	return s, nil
}

// AuthError is an authentication failure the HTTP layer answers with 401.
var AuthError = errors.New("gateway: unauthorized")

// ErrUnavailable is an authentication that could not be decided (the store is
// down); the HTTP layer answers it with 503.
var ErrUnavailable = errors.New("gateway: unavailable")

// ServeHTTP upgrades a GET of /v1/ws; it is meant for every method, and the
// handshake answers any other with 405. Errors before the upgrade are plain HTTP
// answers written by onError. A refused upgrade closes its connection: it is not kept alive
// for another request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request, onError func(w http.ResponseWriter, status int, code, msg string)) {
	refuse := func(status int, code, msg string) {
		w.Header().Set("Connection", "close")
		onError(w, status, code, msg)
	}
	enc, err := wire.ParseEncoding(r.URL.Query().Get("encoding"))
	if err != nil {
		refuse(http.StatusBadRequest, "bad_request", "encoding must be json or proto")
		return
	}
	id, err := s.auth(r)
	switch {
	case errors.Is(err, ErrUnavailable):
		refuse(http.StatusServiceUnavailable, "unavailable", "cannot check the token now; try again")
		return
	case err != nil:
		refuse(http.StatusUnauthorized, "unauthorized", "missing or invalid token")
		return
	}
	s.mu.Lock()
	draining := s.draining
	s.mu.Unlock()
	if draining {
		refuse(http.StatusServiceUnavailable, "unavailable", "server shutting down")
		return
	}
	if badKey(r.Header.Get("Sec-WebSocket-Key")) {
		refuse(http.StatusBadRequest, "bad_request", "Sec-WebSocket-Key must be 16 bytes in base64")
		return
	}
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		// gobwas has answered the client on the hijacked connection (or through w
		// when it could not hijack it).
		if conn != nil {
			go linger(conn)
		}
		return
	}
	// The HTTP server's deadlines are for REST requests; they stay on a hijacked
	// connection, and a socket must not time out for being idle.
	_ = conn.SetDeadline(time.Time{})
	sock := &Socket{srv: s, conn: conn, enc: enc, tag: s.tags.Add(1)}
	sock.heard.Store(time.Now().UnixNano())
	sock.active.Store(sock.heard.Load())
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		b = append([]byte(nil), b...)
		sock.prefix = &b
	}
	if sock.fd, sock.raw, err = fdOf(conn); err != nil {
		_ = conn.Close()
		return
	}
	sock.handler = s.attach(sock, id)
	s.mu.Lock()
	s.sockets[sock.fd] = sock
	s.mu.Unlock()
	s.cfg.Metrics.Connected(1)
	if sock.prefix != nil && !sock.readable() {
		return
	}
	if err := s.arm(sock, s.poll.add); err != nil {
		sock.Close(CloseNone, "")
	}
}

// badKey reports a Sec-WebSocket-Key of the right length that is not a base64
// encoded 16-byte value (RFC 6455 §4.1): gobwas checks only the length, and refuses
// a key of another length itself.
func badKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	var b [18]byte // what 24 base64 characters can hold
	n, err := base64.StdEncoding.Decode(b[:], []byte(key))
	return err != nil || n != 16
}

func fdOf(conn net.Conn) (int, syscall.RawConn, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, nil, errors.New("gateway: connection has no file descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, nil, err
	}
	var fd int
	err = raw.Control(func(f uintptr) { fd = int(f) })
	return fd, raw, err
}

// readyEvent is a readable fd and the tag of its registration.
type readyEvent struct {
	fd  int
	tag int32
}

func (s *Server) work() {
	defer s.wg.Done()
	for ev := range s.ready {
		s.mu.Lock()
		sock := s.sockets[ev.fd]
		s.mu.Unlock()
		if sock == nil || sock.tag != ev.tag {
			continue // the socket is gone: the event was queued before it closed
		}
		if sock.readable() {
			if err := s.arm(sock, s.poll.rearm); err != nil {
				sock.Close(CloseNone, "")
			}
		}
	}
}

// arm registers (add) or re-arms (rearm) sock in the poller, unless it has been
// forgotten meanwhile: its fd may belong to a new socket by now.
func (s *Server) arm(sock *Socket, ctl func(fd int, tag int32) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sockets[sock.fd] != sock {
		return nil
	}
	return ctl(sock.fd, sock.tag)
}

// forget drops a closing socket from the poller and the registry (before its fd is
// closed, so a reused fd never reaches the old socket).
func (s *Server) forget(sock *Socket) {
	s.mu.Lock()
	gone := s.sockets[sock.fd] == sock
	if gone {
		delete(s.sockets, sock.fd)
		s.poll.remove(sock.fd)
	}
	delete(s.partial, sock)
	s.mu.Unlock()
	if gone {
		s.cfg.Metrics.Connected(-1)
	}
}

// track and untrack keep the set of sockets holding the start of a frame, which the
// sweep times out.
func (s *Server) track(sock *Socket) {
	s.mu.Lock()
	if s.sockets[sock.fd] == sock {
		s.partial[sock] = struct{}{}
	}
	s.mu.Unlock()
}

func (s *Server) untrack(sock *Socket) {
	s.mu.Lock()
	delete(s.partial, sock)
	s.mu.Unlock()
}

// sweep is the one goroutine that times sockets out, so that an idle socket costs
// no timer: it closes, without a close frame, the sockets whose partial frame began
// more than ReadTimeout ago (a frame must arrive whole within it), and, with 1001,
// those that nothing arrived on for DeadAfter (a peer that went away without a
// FIN); and it tells the handler of a socket that only pinged for IdleAfter that it
// is idle. A look at every socket is an atomic load or two.
func (s *Server) sweep() {
	defer s.wg.Done()
	every := min(max(s.cfg.ReadTimeout/4, 10*time.Millisecond), time.Second)
	for _, d := range []time.Duration{s.cfg.DeadAfter, s.cfg.IdleAfter} {
		if d > 0 {
			every = min(every, max(d/8, 10*time.Millisecond))
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var late, dead, idle []*Socket
	for {
		select {
		case <-s.quit:
			return
		case now := <-t.C:
			late, dead, idle = late[:0], dead[:0], idle[:0]
			s.mu.Lock()
			for sock := range s.partial {
				if since := sock.since.Load(); since != 0 && now.UnixNano()-since > int64(s.cfg.ReadTimeout) {
					late = append(late, sock)
				}
			}
			if deadAfter, idleAfter := s.cfg.DeadAfter, s.cfg.IdleAfter; deadAfter > 0 || idleAfter > 0 {
				for _, sock := range s.sockets {
					switch {
					case deadAfter > 0 && now.UnixNano()-sock.heard.Load() > int64(deadAfter):
						dead = append(dead, sock)
					case idleAfter > 0 && !sock.idle.Load():
						if a := sock.active.Load(); now.UnixNano()-a > int64(idleAfter) && sock.idle.CompareAndSwap(false, true) {
							if sock.active.Load() == a { // no frame came meanwhile
								idle = append(idle, sock)
							} else {
								sock.idle.Store(false)
							}
						}
					}
				}
			}
			s.mu.Unlock()
			for _, sock := range late {
				sock.Close(CloseNone, "")
			}
			for _, sock := range dead {
				sock.Close(CloseNoHeartbeat, "no heartbeat")
			}
			for _, sock := range idle {
				sock.handler.Idle()
			}
			clear(late)
			clear(dead)
			clear(idle)
		}
	}
}

// Count is the number of open sockets.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sockets)
}

// Shutdown refuses new sockets, asks every connection to flush and close with 1001,
// waits for them (or ctx), then stops the poller and workers.
func (s *Server) Shutdown(ctx context.Context) {
	s.mu.Lock()
	s.draining = true
	open := make([]*Socket, 0, len(s.sockets))
	for _, sock := range s.sockets {
		open = append(open, sock)
	}
	s.mu.Unlock()
	for _, sock := range open {
		sock.handler.Shutdown()
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.Count() > 0 {
		select {
		case <-ctx.Done():
			for _, sock := range open {
				sock.Close(wire.CloseGoingAway, "server shutting down")
			}
		case <-tick.C:
			continue
		}
		break
	}
	s.poll.close()
	s.stopOnce.Do(func() { close(s.quit) })
	s.wg.Wait()
}
