package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// TestDialWithCountsAndResets: DialWith dials through the given NetDial,
// BytesRead counts what was read (frame header included), and Reset ends the
// connection with a TCP reset, not a close.
func TestDialWithCountsAndResets(t *testing.T) {
	frame, err := wire.EncodeServer(wire.JSON, &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Error{
		Error: &parleypb.Error{Code: "bad_request", Message: "a frame of known size"}}})
	if err != nil {
		t.Fatal(err)
	}
	serverErr := make(chan error, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		if err := wsutil.WriteServerMessage(conn, ws.OpText, frame); err != nil {
			serverErr <- err
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		serverErr <- err
	}))
	defer srv.Close()

	var dials atomic.Int32
	var nd net.Dialer
	opts := DialOptions{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return nd.DialContext(ctx, network, addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialWith(ctx, srv.URL, "token", wire.JSON, opts)
	if err != nil {
		t.Fatal(err)
	}
	if dials.Load() != 1 {
		t.Fatalf("NetDial called %d times, want 1", dials.Load())
	}
	f, err := c.Read(5 * time.Second)
	if err != nil || f.GetError().GetMessage() != "a frame of known size" {
		t.Fatalf("read %v, %v", f, err)
	}
	if got, want := c.BytesRead(), int64(2+len(frame)); got != want { // 2: the header of a short frame
		t.Fatalf("BytesRead %d, want %d", got, want)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := <-serverErr; !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("the server read %v after Reset, want a connection reset", err)
	}
}
