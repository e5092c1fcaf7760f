package gateway

import (
	"sync"

	"github.com/gobwas/ws"
)

// frameBuf is a compiled server frame (header and payload in one buffer, so that it
// goes out in one write), from a pool.
type frameBuf struct{ b []byte }

var framePool = sync.Pool{New: func() any { return &frameBuf{b: make([]byte, 0, 512)} }}

// compileFrame lays out a final, unmasked frame with op and payload.
func compileFrame(op ws.OpCode, payload []byte) *frameBuf {
	f := framePool.Get().(*frameBuf)
	f.b = appendFrame(f.b[:0], op, payload)
	return f
}

// free returns f to the pool (unless it grew large).
func (f *frameBuf) free() {
	if cap(f.b) <= 64<<10 {
		framePool.Put(f)
	}
}

// appendFrame appends payload to b as one final, unmasked frame of op.
func appendFrame(b []byte, op ws.OpCode, payload []byte) []byte {
	b = append(b, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n < 1<<16:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127, byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40), byte(uint64(n)>>32),
			byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, payload...)
}

func appendTextFrame(b, payload []byte) []byte   { return appendFrame(b, ws.OpText, payload) }
func appendBinaryFrame(b, payload []byte) []byte { return appendFrame(b, ws.OpBinary, payload) }
