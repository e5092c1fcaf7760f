package gateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

type countingWriter struct {
	bytes.Buffer
	writes int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes++
	return w.Buffer.Write(p)
}

// writeFrame sends the bytes ws.WriteFrame would, in one write.
func TestWriteFrameOneWrite(t *testing.T) {
	for _, size := range []int{0, 5, 125, 126, 65535, 65536, 70000} {
		f := ws.NewFrame(ws.OpBinary, true, []byte(strings.Repeat("x", size)))
		var want bytes.Buffer
		if err := ws.WriteFrame(&want, f); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second time with a pooled buffer
			var got countingWriter
			if err := writeFrame(&got, f); err != nil {
				t.Fatal(err)
			}
			if got.writes != 1 || !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("payload %d: %d writes, equal=%v", size, got.writes, bytes.Equal(got.Bytes(), want.Bytes()))
			}
		}
	}
}
