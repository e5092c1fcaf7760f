package loadgen

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/proto/parleypb"
)

func TestAppendClientFrame(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 200000} {
		payload := bytes.Repeat([]byte{'x', 0, 0xff}, n/3+1)[:n]
		b := appendClientFrame([]byte("keep"), ws.OpBinary, payload)
		require.Equal(t, "keep", string(b[:4]), "appends")
		f, err := ws.ReadFrame(bytes.NewReader(b[4:]))
		require.NoError(t, err, "n=%d", n)
		require.True(t, f.Header.Fin)
		require.True(t, f.Header.Masked, "a client's frames are masked")
		require.Equal(t, ws.OpBinary, f.Header.OpCode)
		ws.Cipher(f.Payload, f.Header.Mask, 0)
		require.Equal(t, string(payload), string(f.Payload), "n=%d", n)
	}
}

// frameBytes encodes one unmasked server frame.
func frameBytes(t *testing.T, f ws.Frame) []byte {
	var b bytes.Buffer
	require.NoError(t, ws.WriteFrame(&b, f))
	return b.Bytes()
}

// TestInboxReassembles: frames that arrive in pieces of any size, fragmented
// messages with a ping between their fragments, and every length encoding
// (7-bit, 16-bit, 64-bit) are all handled once; the ping is answered.
func TestInboxReassembles(t *testing.T) {
	w := mustWorker(t, WorkerConfig{Scenario: ScenarioDM, Conns: 2, Encoding: "json", RunID: "r3"})
	c := w.newConn(0)
	server := mustAttach(t, c)
	c.rmu.Lock() // the test feeds the connection itself: keep the poller off it
	defer c.rmu.Unlock()

	sent := wsFrames(t, sentFrames(w, 4)) // acks of sends 1..4
	var stream []byte
	stream = append(stream, sent[0]...)
	text := encodeJSON(t, sentFrames(w, 2)[1]) // ack 2, fragmented in three
	stream = append(stream, frameBytes(t, ws.NewFrame(ws.OpText, false, text[:5]))...)
	stream = append(stream, frameBytes(t, ws.NewPingFrame([]byte("are you there")))...)
	stream = append(stream, frameBytes(t, ws.NewFrame(ws.OpContinuation, false, text[5:9]))...)
	stream = append(stream, frameBytes(t, ws.NewFrame(ws.OpContinuation, true, text[9:]))...)
	// Ack 3 with padding that needs a 16-bit length, ack 4 with one that needs 64 bits.
	for i, pad := range []int{300, 70000} {
		f := encodeJSON(t, sentFrames(w, 4)[2+i])
		f = append(f[:len(f)-1], []byte(`,"pad":"`+string(bytes.Repeat([]byte{'p'}, pad))+`"}`)...)
		stream = append(stream, frameBytes(t, ws.NewTextFrame(f))...)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for len(stream) > 0 {
		n := min(len(stream), 1+r.IntN(40))
		require.NoError(t, c.feed(stream[:n]))
		stream = stream[n:]
	}
	require.Equal(t, uint64(4), w.acked.Load(), "four sends answered once each")
	require.Equal(t, uint64(0), w.slowDecodes.Load())

	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(server)
	require.NoError(t, err)
	require.Equal(t, ws.OpPong, h.OpCode)
	payload := make([]byte, h.Length)
	_, err = io.ReadFull(server, payload)
	require.NoError(t, err)
	ws.Cipher(payload, h.Mask, 0)
	require.Equal(t, "are you there", string(payload))
}

// TestServerCloseEndsReading: the poller reads a close frame, answers it, and
// the connection counts as ended by the server.
func TestServerCloseEndsReading(t *testing.T) {
	w := mustWorker(t, WorkerConfig{Scenario: ScenarioDM, Conns: 2, Encoding: "json", RunID: "r4"})
	c := w.newConn(0)
	server := mustAttach(t, c)
	// A message first, so that the close is seen after it in the same read or the next.
	require.NoError(t, wsutil.WriteServerMessage(server, ws.OpText, encodeJSON(t, &parleypb.ServerFrame{
		Body: &parleypb.ServerFrame_Synced{Synced: &parleypb.Synced{UpTo: 9}}})))
	require.NoError(t, ws.WriteFrame(server, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye"))))
	select {
	case <-c.readerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("reading did not end after the server's close")
	}
	require.Equal(t, uint64(9), c.maxSeq.Load())
	require.Equal(t, uint64(1), w.closes.Load())
	require.Contains(t, w.firstErr, "1001")
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	for { // frames the client wrote before it read the close (a sync after synced) may come first
		f, err := ws.ReadFrame(server)
		require.NoError(t, err, "the close is answered")
		if f.Header.OpCode == ws.OpClose {
			break
		}
		require.NotEqual(t, ws.OpClose, f.Header.OpCode)
	}
}
