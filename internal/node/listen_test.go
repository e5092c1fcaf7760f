package node

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/testenv"
)

// serve runs newServer(cfg, h) on a limited loopback listener until the test ends.
func serve(t *testing.T, cfg config.Listen, h http.Handler) *limitListener {
	t.Helper()
	ln, err := limitListen("127.0.0.1:0", cfg.MaxConns, cfg.ConnsPerAddress, nil)
	require.NoError(t, err)
	srv := newServer(cfg, h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln
}

func listenCfg() config.Listen {
	l := config.Default().Listen
	l.MaxConns = 100
	return l
}

// mustDial opens a raw connection to ln that fails the test if it is still
// open at the end of it.
func mustDial(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// closedWithin reads c until the server closes it, and fails the test if that
// takes longer than limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) string {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(limit)))
	data, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s (read %q)", limit, data)
	}
	return string(data) // EOF or a reset: closed
}

func okHandler(w http.ResponseWriter, r *http.Request) {
	if _, err := io.ReadAll(r.Body); err != nil {
		http.Error(w, "body", http.StatusBadRequest)
		return
	}
	_, _ = w.Write([]byte("ok"))
}

// Finding 6: a body trickled in slower than listen.readTimeout allows is cut.
func TestReadTimeoutCutsTrickledBody(t *testing.T) {
	cfg := listenCfg()
	cfg.ReadHeaderTimeout, cfg.ReadTimeout = 200*time.Millisecond, 300*time.Millisecond
	ln := serve(t, cfg, http.HandlerFunc(okHandler))
	c := mustDial(t, ln)
	_, err := io.WriteString(c, "POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{")
	require.NoError(t, err)
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte every 20 ms: the body never completes within the test
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	closedWithin(t, c, 5*time.Second)
}

// Finding 6: an idle keep-alive connection is closed after listen.idleTimeout.
func TestIdleTimeoutClosesKeepAlive(t *testing.T) {
	cfg := listenCfg()
	cfg.IdleTimeout = 300 * time.Millisecond // readTimeout stays 30s: it is not what closes it
	ln := serve(t, cfg, http.HandlerFunc(okHandler))
	c := mustDial(t, ln)
	_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.False(t, res.Close, "kept alive")
	closedWithin(t, c, 5*time.Second)
	require.Eventually(t, func() bool { return ln.open() == 0 }, 5*time.Second, 10*time.Millisecond,
		"the closed connection frees its slot")
}

// Finding 6: an answer that takes longer than listen.writeTimeout is not sent;
// the connection is closed.
func TestWriteTimeout(t *testing.T) {
	cfg := listenCfg()
	cfg.WriteTimeout = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	ln := serve(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select { // an answer that is late: past the write deadline
		case <-release:
		case <-time.After(time.Second):
		}
		_, _ = w.Write([]byte("late"))
	}))
	c := mustDial(t, ln)
	_, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	got := closedWithin(t, c, 5*time.Second)
	require.NotContains(t, got, "late")
}

// request sends one GET on c and reads the answer's status, waiting at most limit.
func request(c net.Conn, limit time.Duration) (int, error) {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0, err
	}
	_ = c.SetReadDeadline(time.Now().Add(limit))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = c.SetReadDeadline(time.Time{})
	return res.StatusCode, nil
}

// Finding 6: past listen.maxConns a connection waits (unanswered) until another
// closes.
func TestMaxConns(t *testing.T) {
	cfg := listenCfg()
	cfg.MaxConns = 2
	ln := serve(t, cfg, http.HandlerFunc(okHandler))
	a, b := mustDial(t, ln), mustDial(t, ln)
	requireServed(t, a, b)
	require.Equal(t, 2, ln.open())

	third := mustDial(t, ln) // the kernel completes the handshake; the server does not take it
	_, err := request(third, 300*time.Millisecond)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "the third connection is not served yet: %v", err)

	require.NoError(t, a.Close())
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(third), nil)
	require.NoError(t, err, "served once a slot is free")
	require.Equal(t, http.StatusOK, res.StatusCode)
}

// One source address holds at most listen.connsPerAddress connections: one more is
// closed at once, other addresses are served, and a closed one frees its place.
func TestConnsPerAddress(t *testing.T) {
	cfg := listenCfg()
	cfg.ConnsPerAddress = 2
	ln := serve(t, cfg, http.HandlerFunc(okHandler))
	a, b := mustDial(t, ln), mustDial(t, ln)
	requireServed(t, a, b)
	third := mustDial(t, ln)
	_, err := request(third, 5*time.Second)
	require.Error(t, err, "a third connection from 127.0.0.1 is closed")
	require.False(t, isTimeout(err), "closed, not left waiting: %v", err)

	other, err := net.DialTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, ln.Addr().(*net.TCPAddr))
	require.NoError(t, err)
	defer other.Close()
	status, err := request(other, 5*time.Second)
	require.NoError(t, err, "another address is served")
	require.Equal(t, http.StatusOK, status)

	require.NoError(t, a.Close())
	testenv.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = request(c, 2*time.Second)
		return err
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// requireServed asks one request on each connection and requires a 200.
func requireServed(t *testing.T, conns ...net.Conn) {
	t.Helper()
	for _, c := range conns {
		status, err := request(c, 5*time.Second)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
	}
}
