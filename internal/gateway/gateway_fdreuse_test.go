package gateway_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/gateway"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// gatedListener accepts one connection per token, so that a test decides when the
// server allocates the descriptor of the next connection.
type gatedListener struct {
	net.Listener
	tokens    chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (l *gatedListener) Accept() (net.Conn, error) {
	select {
	case <-l.tokens:
		return l.Listener.Accept()
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *gatedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// A readiness event still queued for a socket that was then closed from outside
// (by its handler, or a failed write) must not reach a new socket that reuses the
// file descriptor: a worker would block reading the new, idle socket and then drop
// it when ReadTimeout expires.
//
// Not parallel: the test relies on the kernel handing out the lowest free
// descriptor, so no other test may open or close descriptors meanwhile.
func TestStaleReadinessAfterFdReuse(t *testing.T) {
	for attempt := range 5 {
		if staleReadinessScenario(t) {
			return
		}
		t.Logf("attempt %d: the descriptor was not reused, retrying", attempt)
	}
	t.Skip("could not get the kernel to reuse the descriptor")
}

// staleReadinessScenario reports false when the descriptor was not reused (the
// scenario did not happen).
func staleReadinessScenario(t *testing.T) bool {
	cfg := defaultConfig()
	cfg.Workers = 1
	cfg.ReadTimeout = 300 * time.Millisecond
	release := make(chan struct{})
	var releaseOnce sync.Once
	blocked := make(chan struct{}, 1)
	gl := &gatedListener{tokens: make(chan struct{}, 8), closed: make(chan struct{})}
	h := newHarnessListener(t, cfg, func(r *recorder) {
		r.onFrame = func(_ *gateway.Socket, f *parleypb.ClientFrame) {
			if f.GetSend().GetId() == "block" {
				blocked <- struct{}{}
				<-release // holds the only worker
			}
		}
	}, func(l net.Listener) net.Listener { gl.Listener = l; return gl })
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the harness shuts down

	gl.tokens <- struct{}{}
	gl.tokens <- struct{}{}
	b := h.dial(t, wire.JSON)
	hb := h.handler(t, 0) // before dialing A: handlers attach after the 101 is written
	a := h.dial(t, wire.JSON)
	ha := h.handler(t, 1)

	// B occupies the only worker; A's readiness is then queued behind it.
	require.NoError(t, b.Write(sendFrame("block", "x")))
	select {
	case <-blocked:
	case <-time.After(waitTimeout):
		t.Fatal("the worker never reached the blocking handler")
	}
	require.NoError(t, a.Write(sendFrame("a", "queued")))
	time.Sleep(100 * time.Millisecond) // the poller reports A and queues it

	// C connects (its client-side descriptor is taken now) but is not accepted yet.
	type dialed struct {
		c   *client.Conn
		err error
	}
	res := make(chan dialed, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := client.Dial(ctx, h.base, "good", wire.JSON)
		res <- dialed{c, err}
	}()
	time.Sleep(50 * time.Millisecond) // C's TCP connection waits in the backlog

	// A is closed from outside while its event waits; its descriptor is freed, and
	// accepting C should reuse it.
	fdA := gateway.FdOf(ha.sock)
	ha.sock.Close(gateway.CloseNone, "")
	gl.tokens <- struct{}{}
	d := <-res
	require.NoError(t, d.err)
	c := d.c
	t.Cleanup(func() { _ = c.Drop() })
	hc := h.handler(t, 2)
	if fd := gateway.FdOf(hc.sock); fd != fdA {
		t.Logf("A had descriptor %d, C got %d", fdA, fd)
		unblock()
		return false
	}

	// Let the worker go on: it must not treat A's stale event as C's.
	unblock()
	waitFor(t, "B's frame done", func() bool { return hb.frameCount() == 1 })
	time.Sleep(3 * cfg.ReadTimeout)
	require.Zero(t, hc.closedCount(), "idle socket C was dropped because of A's stale readiness event")
	require.NoError(t, c.Write(sendFrame("c", "still here")))
	waitFor(t, "C's frame", func() bool { return hc.frameCount() == 1 })
	time.Sleep(3 * cfg.ReadTimeout)
	require.Zero(t, hc.closedCount(), "socket C was dropped after its first frame")
	require.Equal(t, 2, h.srv.Count())
	return true
}
