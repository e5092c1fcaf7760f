package gateway_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/gateway"
	"github.com/parleychat/parley/internal/wire"
)

// A peer that goes silent without closing (no FIN: it just stops) is closed with
// 1001 "no heartbeat" once DeadAfter passes, by the sweep; the handler hears Closed
// once, and LastHeard is when it went quiet, not when the sweep noticed. A peer
// that only sends WebSocket pings, or only frames, stays.
func TestSilentPeerClosedAsDead(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.DeadAfter = 300 * time.Millisecond
	h := newHarness(t, cfg, nil)

	silent := h.dialRaw(t, wire.JSON)
	rs := h.handler(t, 0)
	silent.send(t, true, ws.OpText, sendJSON("m1", "hi")) // heard, then nothing
	quiet := time.Now()
	pinger := h.dialRaw(t, wire.JSON)
	rp := h.handler(t, 1)
	sender := h.dialRaw(t, wire.JSON)
	h.handler(t, 2)

	deadline := time.Now().Add(3 * cfg.DeadAfter)
	for i := 0; time.Now().Before(deadline); i++ {
		time.Sleep(cfg.DeadAfter / 4)
		pinger.send(t, true, ws.OpPing, []byte{byte(i)})
		require.Equal(t, ws.OpPong, pinger.readFrame(t).Header.OpCode)
		sender.send(t, true, ws.OpText, sendJSON("s", "x"))
	}

	require.Equal(t, 1, rs.closedCount(), "the silent socket is closed, once")
	require.Equal(t, 0, rp.closedCount(), "a socket that pings is alive")
	require.Equal(t, 2, h.srv.Count(), "the pinging and the sending sockets stay")
	silent.expectClose(t, gateway.CloseNoHeartbeat)
	heard := rs.sock.LastHeard()
	require.WithinDuration(t, quiet, heard, 100*time.Millisecond, "LastHeard is when the peer went quiet")
}

// Liveness costs no goroutine per connection: a thousand idle sockets add none.
func TestIdleSocketsAddNoGoroutines(t *testing.T) {
	cfg := defaultConfig()
	cfg.DeadAfter = time.Minute
	h := newHarness(t, cfg, nil)
	h.dialRaw(t, wire.JSON)
	h.handler(t, 0)
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	const n = 1000
	for i := 1; i <= n; i++ {
		h.dialRaw(t, wire.JSON)
	}
	h.handler(t, n)
	time.Sleep(100 * time.Millisecond) // the HTTP server's handshake goroutines end
	after := runtime.NumGoroutine()
	require.LessOrEqual(t, after-before, 20, "goroutines: %d with 1 socket, %d with %d", before, after, n+1)
	require.Equal(t, n+1, h.srv.Count())
}

// A socket that only pings (WebSocket ping frames and ping frames) is reported Idle
// once, after IdleAfter; one that sends other frames is not; a frame after Idle
// makes it active again, and it can be reported idle again later.
func TestPingOnlySocketReportedIdle(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.IdleAfter = 300 * time.Millisecond
	h := newHarness(t, cfg, nil)
	pinger := h.dialRaw(t, wire.JSON)
	rp := h.handler(t, 0)
	talker := h.dialRaw(t, wire.JSON)
	rt := h.handler(t, 1)
	deadline := time.Now().Add(3 * cfg.IdleAfter)
	for i := 0; time.Now().Before(deadline); i++ {
		time.Sleep(cfg.IdleAfter / 4)
		if i%2 == 0 {
			pinger.send(t, true, ws.OpPing, []byte{byte(i)})
			require.Equal(t, ws.OpPong, pinger.readFrame(t).Header.OpCode)
		} else {
			pinger.send(t, true, ws.OpText, []byte(`{"type":"ping"}`))
		}
		talker.send(t, true, ws.OpText, sendJSON("s", "x"))
	}
	require.Equal(t, 1, rp.idleCount(), "the pinging socket, once")
	require.Zero(t, rt.idleCount(), "the talking socket")

	pinger.send(t, true, ws.OpText, sendJSON("back", "x"))
	time.Sleep(cfg.IdleAfter / 2)
	require.Equal(t, 1, rp.idleCount(), "active again")
	waitFor(t, "idle again", func() bool { return rp.idleCount() == 2 })
}
