package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Every method on /v1/ws reaches the gateway, which upgrades only a GET: another
// method gets 405 from the handshake (401 before it without a good token), and the
// connection is closed after the answer, as for every refused upgrade; nothing more
// is served on it.
func TestUpgradeRefusesOtherMethods(t *testing.T) {
	n := startNode(t, fastConfig)
	alice := newUser(t, n, "alice")
	addr := strings.TrimPrefix(n.URL, "http://")
	cases := []struct {
		name, method, token, body string
		status                    int
	}{
		{name: "GET", method: "GET", token: alice.Token, status: http.StatusSwitchingProtocols},
		{name: "POST", method: "POST", token: alice.Token, status: http.StatusMethodNotAllowed},
		{name: "POST with a body", method: "POST", token: alice.Token, body: `{"type":"ping"}`, status: http.StatusMethodNotAllowed},
		{name: "PUT", method: "PUT", token: alice.Token, status: http.StatusMethodNotAllowed},
		{name: "DELETE", method: "DELETE", token: alice.Token, status: http.StatusMethodNotAllowed},
		{name: "PATCH", method: "PATCH", token: alice.Token, status: http.StatusMethodNotAllowed},
		{name: "OPTIONS", method: "OPTIONS", token: alice.Token, status: http.StatusMethodNotAllowed},
		{name: "HEAD", method: "HEAD", token: alice.Token, status: http.StatusMethodNotAllowed},
		{name: "POST without a token", method: "POST", status: http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
			require.NoError(t, err)
			t.Cleanup(func() { _ = conn.Close() })
			require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
			_, err = io.WriteString(conn, upgradeRequest(addr, tc.method, tc.token, tc.body))
			require.NoError(t, err)
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil) // gobwas answers HEAD with a body too
			require.NoError(t, err)
			require.Equal(t, tc.status, res.StatusCode)
			if tc.status == http.StatusSwitchingProtocols {
				return // the request is a good upgrade: only its method makes the others fail
			}
			_, err = io.Copy(io.Discard, res.Body)
			require.NoError(t, err)
			// Whatever comes next on this connection is not served.
			_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
			rest, err := io.ReadAll(br)
			if err != nil {
				require.ErrorContains(t, err, "reset", "the connection should be closed after a refused upgrade")
			}
			require.Empty(t, string(rest), "the connection served another request after a refused upgrade")
		})
	}
}

// upgradeRequest is a WebSocket upgrade to /v1/ws with method, token ("" for none)
// and body.
func upgradeRequest(addr, method, token, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", method, addr)
	b.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	if token != "" {
		b.WriteString("Authorization: Bearer " + token + "\r\n")
	}
	if body != "" {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	return b.String() + "\r\n" + body
}
