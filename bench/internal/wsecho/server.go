package wsecho

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// handshakeTimeout bounds the WebSocket upgrade of one connection.
const handshakeTimeout = 10 * time.Second

// ListeningPrefix starts the one line ServeMain prints once it accepts
// connections; the address follows it.
const ListeningPrefix = "wsecho: listening on "

// Server is the bare gobwas/ws echo server: one goroutine per connection, blocked
// in wsutil.ReadClientData, writing each data frame back as it came.
type Server struct {
	ln        net.Listener
	conns     atomic.Int64
	acceptErr atomic.Uint64
	wg        sync.WaitGroup // the accept loop
}

// Listen listens on addr, which must be a loopback address ("127.0.0.1:0" picks
// a free port).
func Listen(addr string) (*Server, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("wsecho: listening: %w", err)
	}
	return &Server{ln: ln}, nil
}

// Start runs the accept loop in a goroutine; Close stops it.
func (s *Server) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.serve()
	}()
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Conns is the number of upgraded connections still open.
func (s *Server) Conns() int64 { return s.conns.Load() }

// Close stops accepting and waits for the accept loop. Open connections are left
// to end when their clients close them (or when the process exits).
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// serve accepts until the listener is closed. Accept errors other than a closed
// listener (EMFILE at the open-files cap, say) back off and retry, as net/http does.
func (s *Server) serve() {
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.acceptErr.Add(1)
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go s.handle(c)
	}
}

// handle upgrades c and echoes data frames until the peer closes or fails.
func (s *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := ws.Upgrade(c); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	s.conns.Add(1)
	defer s.conns.Add(-1)
	for {
		p, op, err := wsutil.ReadClientData(c)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(c, op, p); err != nil {
			return
		}
	}
}

// ServeMain is `wsecho -serve ADDR`: it listens on addr (loopback only), prints
// ListeningPrefix and the address as one line to out, and serves until ctx ends or
// life has passed.
func ServeMain(ctx context.Context, addr string, life time.Duration, out io.Writer) error {
	if life <= 0 {
		return fmt.Errorf("wsecho: -life must be positive")
	}
	s, err := Listen(addr)
	if err != nil {
		return err
	}
	s.Start()
	defer s.Close()
	if _, err := fmt.Fprintf(out, "%s%s\n", ListeningPrefix, s.Addr()); err != nil {
		return err
	}
	t := time.NewTimer(life)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}

// checkLoopback refuses a host:port that is not on loopback.
func checkLoopback(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("wsecho: address %q: %w", addr, err)
	}
	if err := loadgen.CheckLoopback("http://" + addr); err != nil {
		return fmt.Errorf("wsecho: address %q is not loopback", addr)
	}
	return nil
}
