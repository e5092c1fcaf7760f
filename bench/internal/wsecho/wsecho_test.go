package wsecho

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/require"
)

// binDir holds bench/cmd/wsecho, built once by mustBin for the tests that run it as a
// process (so that `go test -bench` alone builds nothing).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsecho-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// mustBin returns the path of bench/cmd/wsecho, built with `go build`.
func mustBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(binDir, "wsecho")
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", bin, "github.com/parleychat/parley/bench/cmd/wsecho").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building bench/cmd/wsecho: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return bin
}

// mustServe starts an in-process echo server on a free loopback port.
func mustServe(t testing.TB) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	s.Start()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// mustDial opens n client connections to addr, closed when the test ends.
func mustDial(t testing.TB, addr string, n int) []*client {
	t.Helper()
	ips := testSourceIPs(n)
	var cs []*client
	for i := range n {
		c, err := dial(context.Background(), addr, ips[i])
		require.NoError(t, err)
		t.Cleanup(c.close)
		cs = append(cs, c)
	}
	return cs
}

// testSourceIPs spreads n connections over 127.0.0.2 and 127.0.0.3.
func testSourceIPs(n int) []net.IP {
	ips := make([]net.IP, n)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(2+i%2))
	}
	return ips
}

func TestServerEchoesFramesByteForByte(t *testing.T) {
	s := mustServe(t)
	c := mustDial(t, s.Addr(), 1)[0]
	for _, size := range []int{1, 125, 126, 127, 65535, 65536, 200_000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			p := make([]byte, size)
			fill(p, 7, uint64(size))
			require.NoError(t, c.ping(p, 5*time.Second))
		})
	}
	require.Eventually(t, func() bool { return s.Conns() == 1 }, 5*time.Second, 10*time.Millisecond)
}

func TestServerAnswersPingAndClose(t *testing.T) {
	s := mustServe(t)
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+s.Addr()+"/")
	require.NoError(t, err)
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	require.NoError(t, wsutil.WriteClientMessage(conn, ws.OpPing, []byte("hi")))
	msgs, err := wsutil.ReadServerMessage(conn, nil)
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	require.Equal(t, ws.OpPong, msgs[0].OpCode)
	require.Equal(t, []byte("hi"), msgs[0].Payload)

	require.NoError(t, wsutil.WriteClientText(conn, []byte("text too")))
	got, op, err := wsutil.ReadServerData(conn)
	require.NoError(t, err)
	require.Equal(t, ws.OpText, op)
	require.Equal(t, "text too", string(got))

	require.NoError(t, ws.WriteFrame(conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "")))))
	_, _, err = wsutil.ReadServerData(conn)
	var closed wsutil.ClosedError
	require.ErrorAs(t, err, &closed)
	require.Eventually(t, func() bool { return s.Conns() == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "10.1.2.3:9000", "example.com:80", "no-port"} {
		_, err := Listen(addr)
		require.Error(t, err, addr)
	}
	require.Error(t, ServeMain(context.Background(), "127.0.0.1:0", 0, io.Discard))
}

func TestEchoInProcess(t *testing.T) {
	s := mustServe(t)
	cs := mustDial(t, s.Addr(), 10)
	var errs errorLog
	st := runEcho(context.Background(), cs, 4, 100, time.Second, &errs)
	require.Zero(t, errs.count(), errs.first)
	require.Positive(t, st.Frames)
	require.Zero(t, st.Mismatches)
	require.GreaterOrEqual(t, st.RTT.Count(), st.Frames)
	require.Equal(t, 100*st.Frames, st.Bytes)
}

// TestEchoDetectsAlteredFrames proves the byte-for-byte check: a server that flips
// one bit of every frame makes every echo count as a mismatch.
func TestEchoDetectsAlteredFrames(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := ws.Upgrade(c); err != nil {
					return
				}
				for {
					p, op, err := wsutil.ReadClientData(c)
					if err != nil {
						return
					}
					p[len(p)/2] ^= 1
					if wsutil.WriteServerMessage(c, op, p) != nil {
						return
					}
				}
			}()
		}
	}()
	cs := mustDial(t, ln.Addr().String(), 2)
	var errs errorLog
	st := runEcho(context.Background(), cs, 2, 32, 200*time.Millisecond, &errs)
	require.Zero(t, errs.count(), errs.first)
	require.Positive(t, st.RTT.Count())
	require.Equal(t, st.RTT.Count(), st.Mismatches)
}

func TestRunIdle(t *testing.T) {
	res, err := Run(context.Background(), Config{Mode: ModeIdle, Conns: 200, SrcIPs: 4, Hold: time.Second,
		ServerBin: mustBin(t), Log: io.Discard})
	require.NoError(t, err)
	require.False(t, res.Failed(), res.Markdown())
	require.Equal(t, 200, res.ConnsUp)
	require.Equal(t, 200, res.AliveAtEnd)
	require.Positive(t, res.Server.RSSPerConnKiB, res.Markdown())
	require.Positive(t, res.SetupRate)
	require.Nil(t, res.Echo)
	require.Empty(t, res.Server.Error)
}

func TestRunEcho(t *testing.T) {
	res, err := Run(context.Background(), Config{Mode: ModeEcho, Conns: 20, Window: 4, Size: 200,
		Duration: time.Second, ServerBin: mustBin(t), Log: io.Discard})
	require.NoError(t, err)
	require.False(t, res.Failed(), res.Markdown())
	require.NotNil(t, res.Echo)
	require.Positive(t, res.Echo.Frames)
	require.Positive(t, res.Echo.FramesPerSec)
	require.Zero(t, res.Echo.Mismatches)
	require.Positive(t, res.Echo.RTT.P50Ms)
	require.GreaterOrEqual(t, res.Echo.RTT.MaxMs, res.Echo.RTT.P99Ms)
}

// TestCommand runs the built command end to end: flags, table, JSON, exit status.
func TestCommand(t *testing.T) {
	bin := mustBin(t)
	out := filepath.Join(t.TempDir(), "r.json")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-echo", "-conns", "4", "-window", "2", "-size", "16",
		"-duration", "300ms", "-json", out)
	md, err := cmd.Output()
	require.NoError(t, err, string(md))
	require.Contains(t, string(md), "| echoed frames/s |")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var res Result
	require.NoError(t, json.Unmarshal(b, &res))
	require.Equal(t, ModeEcho, res.Mode)
	require.Positive(t, res.Echo.Frames)

	for _, args := range [][]string{{}, {"-idle", "-echo"}, {"-idle", "-conns", "20000"}, {"-serve", "0.0.0.0:0"}} {
		err := exec.CommandContext(ctx, bin, args...).Run()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%v", args)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Mode: ModeEcho, Conns: 1}
	cases := map[string]func(*Config){
		"no mode":        func(c *Config) { c.Mode = "" },
		"no conns":       func(c *Config) { c.Conns = 0 },
		"too many conns": func(c *Config) { c.Conns = MaxConns + 1 },
		"window":         func(c *Config) { c.Window = MaxWindow + 1 },
		"size":           func(c *Config) { c.Size = -1 },
		"duration":       func(c *Config) { c.Duration = MaxPhase + time.Second },
		"src ips":        func(c *Config) { c.SrcIPs = 254 },
		"echo memory":    func(c *Config) { c.Conns, c.Window, c.Size = MaxConns, 64, MaxSize },
	}
	require.NoError(t, ok.withDefaults().validate())
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			c := ok
			spoil(&c)
			require.Error(t, c.withDefaults().validate())
		})
	}
}
