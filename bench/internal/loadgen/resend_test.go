package loadgen

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// A send answered "unavailable" is sent again with the same id (as PROTOCOL.md
// tells clients), resendTries times at most; then it counts as an error frame.
func TestResendAfterUnavailable(t *testing.T) {
	w := mustWorker(t, WorkerConfig{Scenario: ScenarioDM, Conns: 2, Encoding: "json", RunID: "r1"})
	c := w.newConn(0)
	c.to = "peer"
	server := mustAttach(t, c)
	id := w.clientID(7, time.Millisecond)
	var unavailable inFrame
	fromProto(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{
		Id: id, Code: "unavailable", Message: "not confirmed"}}}, &unavailable)

	for try := 1; try <= resendTries; try++ {
		c.handle(&unavailable)
		_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := wsutil.ReadClientText(server)
		require.NoError(t, err, "repeat %d", try)
		f, err := wire.DecodeClient(wire.JSON, b)
		require.NoError(t, err)
		require.Equal(t, id, f.GetSend().GetId(), "the same id")
		require.Equal(t, "peer", f.GetSend().GetTo())
	}
	require.Equal(t, uint64(resendTries), w.resent.Load())
	require.Zero(t, w.errFrames.Load())

	c.handle(&unavailable) // one time too many: an error, not a repeat
	require.Equal(t, uint64(1), w.errFrames.Load())
	require.Equal(t, uint64(resendTries), w.resent.Load())

	var notOurs inFrame
	fromProto(&parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{Error: &parleypb.Error{
		Id: "not-ours", Code: "unavailable"}}}, &notOurs)
	c.handle(&notOurs)
	require.Equal(t, uint64(2), w.errFrames.Load(), "an id loadgen did not send is not repeated")
}

// A connect that fails is tried dialTries times in all, then counts as a setup error.
func TestConnectRetriesThenGivesUp(t *testing.T) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now: every dial is refused
	w := mustWorker(t, WorkerConfig{Scenario: ScenarioIdle, Conns: 1, Encoding: "json", RunID: "r2",
		URLs: []string{"http://" + addr}, DialPar: 1})
	w.tokens = []string{"token"}
	up := w.connect(context.Background(), []int{0}, nil)
	require.Zero(t, up)
	require.Equal(t, int64(1), w.setupErrors.Load())
	require.Equal(t, int64(dialTries-1), w.dialRetries.Load())
}

// mustWorker makes a worker whose poller is stopped when the test ends.
func mustWorker(tb testing.TB, cfg WorkerConfig) *worker {
	tb.Helper()
	w, err := newWorker(cfg)
	require.NoError(tb, err)
	tb.Cleanup(w.poll.stop)
	return w
}

// mustAttach gives c one end of a loopback TCP connection and returns the other
// end; both are closed when the test ends.
func mustAttach(tb testing.TB, c *lconn) net.Conn {
	tb.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(tb, err)
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		s, _ := l.Accept()
		accepted <- s
	}()
	nc, err := net.DialTimeout("tcp4", l.Addr().String(), 5*time.Second)
	require.NoError(tb, err)
	server := <-accepted
	require.NotNil(tb, server)
	require.NoError(tb, c.attach(nc, nil))
	tb.Cleanup(func() { c.close(); server.Close() })
	return server
}
