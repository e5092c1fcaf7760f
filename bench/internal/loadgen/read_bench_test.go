package loadgen

import (
	"bytes"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// ringSize is how many distinct frames a benchmark cycles through.
const ringSize = 4096

// wsFrames encodes server frames as unmasked WebSocket text frames.
func wsFrames(tb testing.TB, fs []*parleypb.ServerFrame) [][]byte {
	out := make([][]byte, len(fs))
	for i, f := range fs {
		payload, err := wire.EncodeServer(wire.JSON, f)
		if err != nil {
			tb.Fatal(err)
		}
		var b bytes.Buffer
		if err := ws.WriteFrame(&b, ws.NewTextFrame(payload)); err != nil {
			tb.Fatal(err)
		}
		out[i] = b.Bytes()
	}
	return out
}

// benchConn is a receiving connection of a dm worker (user 0, whose peer is user 1).
func benchConn(b *testing.B) (*worker, *lconn) {
	w := mustWorker(b, WorkerConfig{Scenario: ScenarioDM, Conns: 2, Encoding: "json", RunID: "bench1"})
	return w, w.newConn(0)
}

// peerMessages are message frames from user 1 to user 0, as the node pushes them.
func peerMessages(w *worker, n int) []*parleypb.ServerFrame {
	out := make([]*parleypb.ServerFrame, n)
	for i := range out {
		at := time.Duration(i) * time.Microsecond
		out[i] = &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Message{Message: &parleypb.Message{
			Seq: uint64(1000 + i), MessageId: 383280997669535744 + int64(i), Conversation: "dm:" + w.userName(0) + ":" + w.userName(1),
			From: w.userName(1), To: w.userName(0), Text: messageText, Ts: 1764590000000 + int64(i),
			ClientId: w.clientID(uint64(i+1), at)}}}
	}
	return out
}

// sentFrames answer the connection's own sends 1..n.
func sentFrames(w *worker, n int) []*parleypb.ServerFrame {
	out := make([]*parleypb.ServerFrame, n)
	for i := range out {
		out[i] = &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{
			Id: w.clientID(uint64(i+1), time.Duration(i)*time.Microsecond), MessageId: 383280997669535744 + int64(i),
			Conversation: "dm:" + w.userName(0) + ":" + w.userName(1), Ts: 1764590000000 + int64(i)}}}
	}
	return out
}

// BenchmarkReadPath is the cost of one received frame once its bytes are read
// from the socket: the WebSocket header, the decode, the bookkeeping and the
// histogram record. (The read(2) and the wake-ups around it are what a run's
// "µs per frame received" adds.)
func BenchmarkReadPath(b *testing.B) {
	for _, c := range []struct {
		name   string
		frames func(w *worker, n int) []*parleypb.ServerFrame
		reset  func(c *lconn)
		check  func(b *testing.B, w *worker)
	}{
		{"message", peerMessages, func(c *lconn) { c.seen = map[string]*bitset{} }, func(b *testing.B, w *worker) {
			if got := w.delivered.Load(); got != uint64(b.N) {
				b.Fatalf("delivered %d of %d", got, b.N)
			}
		}},
		{"sent", sentFrames, func(c *lconn) { c.acked = nil }, func(b *testing.B, w *worker) {
			if got := w.acked.Load(); got != uint64(b.N) {
				b.Fatalf("acked %d of %d", got, b.N)
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			w, conn := benchConn(b)
			frames := wsFrames(b, c.frames(w, ringSize))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if i%ringSize == 0 {
					c.reset(conn) // the ring's message numbers come round again
				}
				if err := conn.feed(frames[i%ringSize]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			c.check(b, w)
		})
	}
}
