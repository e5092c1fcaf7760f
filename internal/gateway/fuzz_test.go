package gateway

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/gobwas/ws/wsutil"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// FuzzSocketParse feeds arbitrary byte streams to a Socket's frame parser, whole
// and cut into arbitrary pieces (each byte of cuts is the length of the next piece,
// less one; the pieces repeat the cuts until the stream is used up). It must never
// panic or hang, and after every piece it must have handled the complete frames,
// kept fewer than MaxFrameBytes+14 bytes of an incomplete one, or failed with one of
// the gateway's errors; the pieces must not change what it handles nor how it fails.
//
// The seeds in testdata/fuzz/FuzzSocketParse (the RFC 6455 cases of
// rfc6455_test.go) run with every go test. To fuzz:
//
//	go test -fuzz FuzzSocketParse -fuzztime 30s ./internal/gateway
func FuzzSocketParse(f *testing.F) {
	cfg := Config{MaxFrameBytes: 4096, FrameRate: 1e12, FrameBurst: 1 << 40}
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		whole, wholeEvents := newParseSocket(t, cfg)
		wholeErr := feed(t, whole, cfg, stream, nil)
		split, splitEvents := newParseSocket(t, cfg)
		splitErr := feed(t, split, cfg, stream, cuts)

		if errorKind(wholeErr) != errorKind(splitErr) {
			t.Fatalf("whole: %v; in pieces: %v", wholeErr, splitErr)
		}
		if !wholeEvents.equal(splitEvents) {
			t.Fatalf("whole, the handler got %v; in pieces %v", wholeEvents.kinds(), splitEvents.kinds())
		}
		if wholeErr == nil && !bytes.Equal(whole.in, split.in) {
			t.Fatalf("whole, %d bytes are kept; in pieces %d", len(whole.in), len(split.in))
		}
	})
}

// feed gives stream to s in pieces (all at once when cuts is empty) as reads would,
// checking the bounds after each, until s fails; it returns the failure. Like a read
// buffer, a copy of stream is unmasked in place.
func feed(t *testing.T, s *Socket, cfg Config, stream, cuts []byte) error {
	stream = bytes.Clone(stream)
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(cuts) > 0 {
			n = min(n, int(cuts[i%len(cuts)])+1)
		}
		_, err := s.consume(stream[:n])
		stream = stream[n:]
		if err != nil {
			if errorKind(err) == "" {
				t.Fatalf("an error that is not the gateway's: %v", err)
			}
			return err
		}
		if len(s.in) >= cfg.MaxFrameBytes+14 {
			t.Fatalf("%d bytes kept of an incomplete frame, limit %d", len(s.in), cfg.MaxFrameBytes)
		}
		if len(s.frag) > cfg.MaxFrameBytes {
			t.Fatalf("%d bytes of a fragmented message kept, limit %d", len(s.frag), cfg.MaxFrameBytes)
		}
	}
	return nil
}

// errorKind names the gateway error err is ("" for none of them).
func errorKind(err error) string {
	var closed wsutil.ClosedError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &closed):
		return "close"
	case errors.Is(err, errProtocol):
		return "protocol"
	case errors.Is(err, errInvalidUTF8):
		return "utf8"
	case errors.Is(err, errFrameTooBig):
		return "too big"
	case errors.Is(err, errRate):
		return "rate"
	}
	return ""
}

// newParseSocket is a JSON socket with no connection: its handler records what it
// gets, and what it writes (pongs) goes to /dev/null.
func newParseSocket(t *testing.T, cfg Config) (*Socket, *parseEvents) {
	devNull, err := openDevNull()
	if err != nil {
		t.Fatal(err)
	}
	ev := &parseEvents{}
	srv := &Server{cfg: cfg, sockets: map[int]*Socket{}, partial: map[*Socket]struct{}{}}
	return &Socket{srv: srv, raw: discardRaw{devNull.Fd()}, enc: wire.JSON, handler: ev}, ev
}

var openDevNull = sync.OnceValues(func() (*os.File, error) { return os.OpenFile(os.DevNull, os.O_WRONLY, 0) })

// discardRaw is a syscall.RawConn on a descriptor that takes every write (/dev/null).
type discardRaw struct{ fd uintptr }

var _ syscall.RawConn = discardRaw{}

func (d discardRaw) Control(f func(fd uintptr)) error    { f(d.fd); return nil }
func (d discardRaw) Read(f func(fd uintptr) bool) error  { f(d.fd); return nil }
func (d discardRaw) Write(f func(fd uintptr) bool) error { f(d.fd); return nil }

// parseEvents is a Handler that records the frames it gets, in order.
type parseEvents struct {
	frames []*parleypb.ClientFrame // nil for a bad frame
	bad    []string
}

func (e *parseEvents) Frame(f *parleypb.ClientFrame) { e.frames = append(e.frames, f) }
func (e *parseEvents) BadFrame(err error) {
	e.frames = append(e.frames, nil)
	e.bad = append(e.bad, err.Error())
}
func (e *parseEvents) Closed()   {}
func (e *parseEvents) Shutdown() {}
func (e *parseEvents) Idle()     {}

func (e *parseEvents) equal(o *parseEvents) bool {
	if len(e.frames) != len(o.frames) || len(e.bad) != len(o.bad) {
		return false
	}
	for i, f := range e.frames {
		if (f == nil) != (o.frames[i] == nil) || f != nil && !proto.Equal(f, o.frames[i]) {
			return false
		}
	}
	for i, b := range e.bad {
		if b != o.bad[i] {
			return false
		}
	}
	return true
}

func (e *parseEvents) kinds() []string {
	out := make([]string, len(e.frames))
	for i, f := range e.frames {
		out[i] = "bad"
		if f != nil {
			out[i] = wire.TypeOf(f)
		}
	}
	return out
}
