package node

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/gateway"
	"github.com/parleychat/parley/proto/parleypb"
)

// A refused WebSocket upgrade frees its connection, and its slot of
// listen.maxConns: the answers before the upgrade close it, and so does a
// handshake the WebSocket library refuses after it took the connection over. A
// good upgrade keeps it, also after a REST call on the same connection.
func TestRefusedUpgradeClosesConnection(t *testing.T) {
	authn := func(r *http.Request) (gateway.Identity, error) {
		if r.Header.Get("Authorization") != "Bearer good" {
			return gateway.Identity{}, gateway.AuthError
		}
		return gateway.Identity{User: "alice", Device: "d1"}, nil
	}
	gw, err := gateway.New(gateway.Config{Workers: 1, ReadTimeout: time.Second, WriteTimeout: time.Second,
		MaxFrameBytes: 1 << 16, FrameRate: 100, FrameBurst: 100}, slog.New(slog.DiscardHandler), authn,
		func(*gateway.Socket, gateway.Identity) gateway.Handler { return nopHandler{} })
	require.NoError(t, err)
	t.Cleanup(func() { gw.Shutdown(context.Background()) })
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ws", func(w http.ResponseWriter, r *http.Request) { gw.ServeHTTP(w, r, api.WriteError) })
	mux.HandleFunc("GET /healthz", okHandler)
	cfg := listenCfg()
	cfg.MaxConns = 1 // a connection left open would block every later one
	ln := serve(t, cfg, mux)

	const ws = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	cases := []struct{ name, request, status string }{
		{"no token", "GET /v1/ws HTTP/1.1\r\nHost: x\r\n" + ws + "\r\n", "401"},
		{"bad encoding", "GET /v1/ws?encoding=xml HTTP/1.1\r\nHost: x\r\n" + ws + "\r\n", "400"},
		{"handshake the library refuses", "GET /v1/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n", "400"},
		{"after a REST call on the same connection", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
			"GET /v1/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nSec-WebSocket-Version: 13\r\n\r\n", "400"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := mustDial(t, ln)
			_, err := io.WriteString(conn, c.request)
			require.NoError(t, err)
			got := closedWithin(t, conn, 5*time.Second)
			require.Contains(t, got, "HTTP/1.1 "+c.status, got)
			require.Eventually(t, func() bool { return ln.open() == 0 }, 5*time.Second, 10*time.Millisecond)
		})
	}

	t.Run("a good upgrade stays open, also after a REST call on its connection", func(t *testing.T) {
		conn := mustDial(t, ln)
		status, err := request(conn, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		_, err = io.WriteString(conn, "GET /v1/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n"+ws+"\r\n")
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		require.Equal(t, http.StatusSwitchingProtocols, res.StatusCode)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
		_, err = conn.Read(make([]byte, 1))
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "still open: %v", err)
		require.Equal(t, 1, ln.open())
	})
}

// nopHandler is a socket handler that ignores everything.
type nopHandler struct{}

func (nopHandler) Frame(*parleypb.ClientFrame) {}
func (nopHandler) BadFrame(error)              {}
func (nopHandler) Closed()                     {}
func (nopHandler) Shutdown()                   {}
func (nopHandler) Idle()                       {}
