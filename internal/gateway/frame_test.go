package gateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// compileFrame lays out the bytes ws.WriteFrame writes, for every length encoding.
func TestCompileFrame(t *testing.T) {
	for _, size := range []int{0, 5, 125, 126, 65535, 65536, 70000} {
		payload := []byte(strings.Repeat("x", size))
		var want bytes.Buffer
		if err := ws.WriteFrame(&want, ws.NewFrame(ws.OpBinary, true, payload)); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time with a pooled buffer
			f := compileFrame(ws.OpBinary, payload)
			if !bytes.Equal(f.b, want.Bytes()) {
				t.Fatalf("payload %d: the frame differs from ws.WriteFrame's", size)
			}
			f.free()
		}
	}
}

// parseHeader reads what ws.ReadHeader reads, and says when bytes are missing.
func TestParseHeader(t *testing.T) {
	for _, size := range []int64{0, 125, 126, 65535, 65536, 1 << 40} {
		h := ws.Header{Fin: true, OpCode: ws.OpText, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: size}
		var b bytes.Buffer
		if err := ws.WriteHeader(&b, h); err != nil {
			t.Fatal(err)
		}
		for cut := range b.Len() {
			if _, _, ok, err := parseHeader(b.Bytes()[:cut]); ok || err != nil {
				t.Fatalf("length %d cut at %d: ok %v err %v", size, cut, ok, err)
			}
		}
		got, n, ok, err := parseHeader(b.Bytes())
		if !ok || err != nil || n != b.Len() || got != h {
			t.Fatalf("length %d: got %+v (%d bytes, ok %v, err %v), want %+v", size, got, n, ok, err, h)
		}
	}
	bad := []byte{0x81, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4} // 64-bit length with the top bit set
	if _, _, _, err := parseHeader(bad); err == nil {
		t.Fatal("a length with the most significant bit set is a protocol error")
	}
}
