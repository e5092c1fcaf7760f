package gateway_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// Peers that send the first byte of a frame and stop, many more than there are
// workers, stall nobody: another client's ping is answered at once, and each stalled
// peer costs only itself (its socket is dropped when its frame is late).
func TestStalledPeersStallNoWorker(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.Workers = 4
	cfg.ReadTimeout = 2 * time.Second
	h := newHarness(t, cfg, nil)
	const stalled = 40 // ten times the workers
	for range stalled {
		c := h.dialRaw(t, wire.JSON)
		_, err := c.Write(maskedFrame(true, ws.OpText, sendJSON("x", "never finished"))[:1])
		require.NoError(t, err)
	}
	waitFor(t, "all attached", func() bool { return h.srv.Count() == stalled })
	c := h.dialRaw(t, wire.JSON)
	for i := range 5 {
		start := time.Now()
		c.send(t, true, ws.OpPing, []byte{byte(i)})
		f := c.readFrame(t)
		require.Equal(t, ws.OpPong, f.Header.OpCode)
		require.Less(t, time.Since(start), time.Second, "ping %d answered while %d peers stall", i, stalled)
	}
	// The stalled ones are dropped once their frame is late; the live one stays.
	waitFor(t, "stalled sockets dropped", func() bool { return h.srv.Count() == 1 })
}

// A client that only pings stays connected well past ReadTimeout: the deadline is
// one frame's, not the connection's.
func TestPingsKeepAConnection(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.ReadTimeout = 100 * time.Millisecond
	h := newHarness(t, cfg, nil)
	c := h.dialRaw(t, wire.JSON)
	for i := range 10 {
		time.Sleep(60 * time.Millisecond) // idle between pings, longer in all than ReadTimeout
		c.send(t, true, ws.OpPing, []byte{byte(i)})
		require.Equal(t, ws.OpPong, c.readFrame(t).Header.OpCode)
	}
	require.Equal(t, 1, h.srv.Count())
}

// A reader that stops reading is closed once what waits for it passes
// OutboundBytes: the server's memory for it stays bounded, and writes to it fail
// rather than wait.
func TestStalledReaderClosedWith1013(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.OutboundBytes = 64 << 10
	h := newHarness(t, cfg, nil)
	c := h.dialRaw(t, wire.JSON)
	r := h.handler(t, 0)
	big := &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{
		Id: strings.Repeat("x", 4000), MessageId: 1, Conversation: "dm:a:b"}}}
	var err error
	written := 0
	start := time.Now()
	for written < 64<<20 && err == nil { // the kernel's buffers take some MiB first
		if err = r.sock.Write(big); err == nil {
			written += 4000
		}
	}
	t.Logf("%d bytes written in %v before %v", written, time.Since(start), err)
	require.Error(t, err, "writes fail once the reader is too far behind")
	require.Less(t, time.Since(start), 5*time.Second, "no write waited on the reader")
	requireClosedOnce(t, h, r)
	t.Logf("closed after %v", time.Since(start))

	// The client reads the backlog, then the close (1013, when the kernel had room
	// for it) or the end of the stream.
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitTimeout)))
	for {
		f, err := ws.ReadFrame(c.r)
		if err != nil {
			require.True(t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err), "%v", err)
			break
		}
		if f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			require.Equal(t, wire.CloseTryAgain, int(code))
			break
		}
	}
	t.Logf("read to the end after %v", time.Since(start))
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && strings.Contains(op.Err.Error(), "reset")
}

// A reader that is slow but keeps up within OutboundBytes gets everything, in order.
func TestSlowReaderGetsEverything(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.OutboundBytes = 8 << 20
	h := newHarness(t, cfg, nil)
	c := h.dialRaw(t, wire.JSON)
	r := h.handler(t, 0)
	const frames = 2000
	payload := strings.Repeat("y", 2000)
	go func() {
		for i := range frames {
			f := &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: &parleypb.Sent{
				Id: payload, MessageId: int64(i + 1), Conversation: "dm:a:b"}}}
			if r.sock.Write(f) != nil {
				return
			}
		}
	}()
	for i := range frames {
		if i%200 == 0 {
			time.Sleep(20 * time.Millisecond) // slow, but behind by less than the bound
		}
		f := c.readFrame(t)
		require.True(t, bytes.Contains(f.Payload, []byte(`"messageId":"`+itoa(i+1)+`"`)), "frame %d out of order", i)
	}
	require.Equal(t, 1, h.srv.Count())
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

// Every frame on the wire counts against the frame rate, each fragment of a message
// as one: a stream of empty continuations, which never completes a message, is
// closed with 1008 like any other flood (the ping after it gets no answer), and
// nothing of it reaches the handler.
func TestEmptyContinuationsClosedWith1008(t *testing.T) {
	t.Parallel()
	cfg := defaultConfig()
	cfg.FrameRate, cfg.FrameBurst = 1, 100
	h := newHarness(t, cfg, nil)
	c := h.dialRaw(t, wire.JSON)
	flood := text(false, sendJSON("x", "never finished")[:8])
	for range 1000 {
		flood = append(flood, cont(false, nil)...)
	}
	_, err := c.Write(append(flood, ping("after the flood")...))
	require.NoError(t, err)
	requireCloseThenEOF(t, c, wire.ClosePolicy)
	r := h.handler(t, 0)
	requireClosedOnce(t, h, r)
	frames, bad, _, _ := r.snapshot()
	require.Empty(t, frames)
	require.Empty(t, bad)
}

// A message takes a token per fragment, and the pings between its fragments take
// theirs: with a burst of 4 (and next to no refill), 4 frames are handled and the
// 5th closes the socket with 1008, whatever message they belong to.
func TestFragmentsCountAgainstRate(t *testing.T) {
	t.Parallel()
	msg := sendJSON("frag", "fragmented")
	want := sendFrame("frag", "fragmented")
	four := fragments(ws.OpText, msg, 5, 10, 15)
	two := fragments(ws.OpText, msg, 10)
	cases := []struct {
		name   string
		send   [][]byte
		pongs  [][]byte
		frames []*parleypb.ClientFrame
	}{
		{name: "4 fragments, then a ping", send: append(four, ping("over")), frames: frames(want)},
		{name: "4 fragments, then a message", send: append(four, text(true, sendJSON("next", "over"))), frames: frames(want)},
		{name: "5 fragments", send: fragments(ws.OpText, msg, 5, 10, 15, 20)},
		{name: "2 fragments with 2 pings between them, then a ping", send: [][]byte{two[0], ping("p1"), ping("p2"), two[1], ping("over")},
			pongs: pongs("p1", "p2"), frames: frames(want)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := defaultConfig()
			cfg.FrameRate, cfg.FrameBurst = 0.001, 4
			h := newHarness(t, cfg, nil)
			c := h.dialRaw(t, wire.JSON)
			_, err := c.Write(bytes.Join(tc.send, nil))
			require.NoError(t, err)
			for i, p := range tc.pongs {
				f := c.readFrame(t)
				require.Equal(t, ws.OpPong, f.Header.OpCode, "answer %d", i)
				require.Equal(t, string(p), string(f.Payload))
			}
			requireCloseThenEOF(t, c, wire.ClosePolicy)
			r := h.handler(t, 0)
			requireClosedOnce(t, h, r)
			got, bad, _, _ := r.snapshot()
			require.Len(t, got, len(tc.frames))
			for i := range got {
				requireFrame(t, tc.frames[i], got[i])
			}
			require.Empty(t, bad)
		})
	}
}
