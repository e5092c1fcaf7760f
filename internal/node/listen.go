package node

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/parleychat/parley/internal/config"
)

// newServer is the HTTP server of the main listener: REST requests get
// listen.readTimeout to arrive and listen.writeTimeout to be answered, and an
// idle keep-alive connection is closed after listen.idleTimeout. (A WebSocket
// upgrade clears the deadlines on the connection it takes over.)
func newServer(cfg config.Listen, h http.Handler) *http.Server {
	return &http.Server{Addr: cfg.HTTP, Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout}
}

// newAdminServer is the HTTP server of the admin listener: the main listener's
// read and idle timeouts, no write timeout (a CPU profile or trace may take as
// long as it is asked to).
func newAdminServer(cfg config.Listen, h http.Handler) *http.Server {
	return &http.Server{Addr: cfg.Admin, Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout: cfg.ReadTimeout, IdleTimeout: cfg.IdleTimeout}
}

// limitListener accepts at most max connections at once: past it, Accept waits
// until one closes, and new connections wait in the kernel's backlog. Each
// accepted connection holds its slot until it is closed, also after an HTTP
// handler took it over (a WebSocket). Its connections keep the file descriptor
// of the TCP connection reachable (syscall.Conn), as the gateway needs.
//
// Past perAddress connections from one source address (an IPv6 address counts by
// its /64; exempt prefixes are not counted), a new connection from it is closed at
// once.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one per accepted connection, and one for an Accept under way
	conns     atomic.Int64  // accepted and not closed
	done      chan struct{}
	closeOnce sync.Once

	perAddress int            // 0: no limit
	exempt     []netip.Prefix // not counted
	mu         sync.Mutex
	byAddress  map[netip.Prefix]int // open connections per source
}

// limitListen listens on addr (TCP) for at most max connections at once, and at
// most perAddress (0: any number) from one source address outside exempt.
func limitListen(addr string, max, perAddress int, exempt []netip.Prefix) (*limitListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &limitListener{Listener: ln, slots: make(chan struct{}, max), done: make(chan struct{}),
		perAddress: perAddress, exempt: exempt, byAddress: map[netip.Prefix]int{}}, nil
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		source, ok := l.admit(c.RemoteAddr())
		if !ok {
			_ = c.Close() // one address holds as many as it may
			<-l.slots
			continue
		}
		l.conns.Add(1)
		return &limitConn{Conn: c, release: func() {
			l.leave(source)
			l.conns.Add(-1)
			<-l.slots
		}}, nil
	}
}

// admit counts a connection from addr; false if its source is at perAddress.
func (l *limitListener) admit(addr net.Addr) (netip.Prefix, bool) {
	if l.perAddress <= 0 {
		return netip.Prefix{}, true
	}
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}, true
	}
	ip := ap.Addr().Unmap()
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return netip.Prefix{}, true
		}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	source, _ := ip.Prefix(bits)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddress[source] >= l.perAddress {
		return netip.Prefix{}, false
	}
	l.byAddress[source]++
	return source, true
}

func (l *limitListener) leave(source netip.Prefix) {
	if !source.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byAddress[source]--; l.byAddress[source] <= 0 {
		delete(l.byAddress, source)
	}
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// open is how many accepted connections are not closed yet.
func (l *limitListener) open() int { return int(l.conns.Load()) }

// limitConn is an accepted connection; closing it frees its slot.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// SyscallConn exposes the TCP connection's file descriptor.
func (c *limitConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("node: connection has no file descriptor")
}

// CloseWrite half-closes a TCP connection.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
