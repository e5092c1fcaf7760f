package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
)

// TestEndToEnd runs the generator in this process against a real node: 20
// connections, 200 msgs/s for 3 s.
func TestEndToEnd(t *testing.T) {
	node := testenv.StartNode(t, testenv.DatabaseURL(t), "auth:\n  bcryptCost: 4\nlimits:\n  frameRate: 100000\n  frameBurst: 100000\n")
	goroutines := runtime.NumGoroutine()

	var progress bytes.Buffer
	ctx := testenv.Context(t, 2*time.Minute)
	res, err := Run(ctx, Config{
		URLs: []string{node.URL}, Conns: 20, Rate: 200, Duration: 3 * time.Second, Drain: 10 * time.Second,
		Procs: 1, Progress: &progress,
	})
	require.NoError(t, err)
	t.Logf("progress:\n%s", progress.String())
	t.Logf("\n%s", res.Markdown())

	require.Equal(t, 20, res.ConnsUp)
	require.Zero(t, res.SetupErrors)
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent, res.Acked, "every sent message acked")
	require.Equal(t, res.Sent, res.Delivered, "every sent message delivered")
	require.Zero(t, res.Duplicates, "delivered exactly once")
	require.Empty(t, res.ErrorFrames)
	require.Zero(t, res.Closes)
	require.Zero(t, res.WriteErrors)
	require.Empty(t, res.FirstErrors)
	require.Positive(t, res.SetupRate)
	require.Positive(t, res.DeliveredPerSec)

	for _, l := range []Latency{res.SentLatency, res.DeliveryLatency} {
		require.Equal(t, res.Sent, l.Count)
		require.Positive(t, l.P50Ms)
		require.LessOrEqual(t, l.P50Ms, l.P99Ms)
		require.LessOrEqual(t, l.P99Ms, l.P999Ms)
		require.LessOrEqual(t, l.P999Ms, l.MaxMs)
	}
	require.Contains(t, progress.String(), "conns up")

	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, res.WriteJSON(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var back Result
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, res.Delivered, back.Delivered)
	require.Equal(t, res.DeliveryLatency, back.DeliveryLatency)
	require.True(t, strings.HasPrefix(res.Markdown(), "## loadgen"))

	// Every goroutine of the run has ended (the HTTP client's idle connections aside).
	testenv.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > goroutines+4 {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines now, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
}
