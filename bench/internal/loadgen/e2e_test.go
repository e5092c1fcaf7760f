package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/node"
	"github.com/parleychat/parley/internal/testenv"
)

// nodeYAML makes registration cheap and lets one connection send fast.
const nodeYAML = "auth:\n  bcryptCost: 4\nlimits:\n  frameRate: 100000\n  frameBurst: 100000\n  userSends: {burst: 0}\n  userReads: {burst: 0}\n"

const testSecret = "loadgen-test-secret-0123456789abcdef"

// startNode starts a node with nodeYAML and returns it with its pid.
func startNode(t *testing.T, env ...string) (*testenv.Node, []int) {
	t.Helper()
	n := testenv.StartNode(t, testenv.DatabaseURL(t), nodeYAML, env...)
	pids, err := ListenerPIDs([]string{n.URL})
	require.NoError(t, err)
	return n, pids
}

// run runs cfg against the node, logs its progress and table, and checks what
// every run must give: a result that survives JSON, and no goroutine left.
func run(t *testing.T, cfg Config) *Result {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	var progress bytes.Buffer
	cfg.Progress = &progress
	res, err := Run(testenv.Context(t, 3*time.Minute), cfg)
	t.Logf("progress:\n%s", progress.String())
	require.NoError(t, err)
	t.Logf("\n%s", res.Markdown())
	require.Contains(t, progress.String(), "conns up")

	path := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, res.WriteJSON(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var back Result
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, res.Delivered, back.Delivered)
	require.Equal(t, res.DeliveryLatency, back.DeliveryLatency)
	require.True(t, strings.HasPrefix(res.Markdown(), "## loadgen "+cfg.Scenario))

	// Every goroutine of the run has ended (the HTTP client's idle connections aside).
	testenv.CheckFor(t, 5*time.Second, 50*time.Millisecond, func() error {
		if n := runtime.NumGoroutine(); n > goroutines+4 {
			buf := make([]byte, 1<<20)
			return fmt.Errorf("%d goroutines now, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
		}
		return nil
	})
	return res
}

func requireClean(t *testing.T, res *Result) {
	t.Helper()
	require.Zero(t, res.Errors, "errors: %v", res.FirstErrors)
	require.Zero(t, res.SetupErrors)
	require.Empty(t, res.ErrorFrames)
	require.Zero(t, res.Closes)
	require.Zero(t, res.WriteErrors)
	require.Zero(t, res.Lost)
	require.Zero(t, res.Duplicates)
	require.Empty(t, res.FirstErrors)
	want := res.Conns
	if res.PushOffline {
		want /= 2 // the recipients stay offline
	}
	require.Equal(t, want, res.SetupUp)
	require.Positive(t, res.SetupRate)
}

func requireOrdered(t *testing.T, l Latency, count uint64) {
	t.Helper()
	require.Equal(t, count, l.Count)
	require.Positive(t, l.P50Ms)
	require.LessOrEqual(t, l.P50Ms, l.P99Ms)
	require.LessOrEqual(t, l.P99Ms, l.P999Ms)
	require.LessOrEqual(t, l.P999Ms, l.MaxMs)
}

func requireNodeStats(t *testing.T, res *Result, pids []int) {
	t.Helper()
	require.NotNil(t, res.Node)
	require.Equal(t, pids, res.Node.PIDs)
	require.Empty(t, res.Node.Error)
	require.Positive(t, res.Node.Connected.RSSKiB)
	require.Positive(t, res.Node.End.RSSKiB)
	require.GreaterOrEqual(t, res.Node.TrafficCPUSec, 0.0)
	require.Positive(t, res.Node.SetupCPUSec+res.Node.RegisterCPUSec, "the node worked to set the users up")
	delivered, sent := res.Delivered, res.Sent
	if c := res.Channel; c != nil { // the end marker: one post more, to every member
		require.Equal(t, uint64(c.Followers), c.MarkerDeliveries)
		delivered, sent = delivered+c.MarkerDeliveries, sent+1
	}
	require.InDelta(t, perMessageUs(res.Node.TrafficCPUSec, delivered), res.Node.CPUPerDeliveredUs, 1e-6)
	require.Contains(t, res.Markdown(), "µs per message delivered")
	if res.Scenario == ScenarioStorm {
		require.Zero(t, res.Node.CPUPerSentUs, "a storm sends before its measured phase")
	} else {
		require.InDelta(t, perMessageUs(res.Node.TrafficCPUSec, sent), res.Node.CPUPerSentUs, 1e-6)
	}
}

// TestEndToEnd runs 1:1 traffic in this process against a real node: 20
// connections (registered and logged in), 200 msgs/s for 3 s.
func TestEndToEnd(t *testing.T) {
	n, pids := startNode(t)
	metrics, warnings := FindMetrics(context.Background(), []string{n.URL}, "")
	require.Empty(t, warnings)
	require.Equal(t, []string{n.AdminURL + "/metrics"}, metrics, "found from the node's process")
	res := run(t, Config{URLs: []string{n.URL}, Conns: 20, Rate: 200, Duration: 3 * time.Second,
		Drain: 10 * time.Second, Procs: 1, NodePIDs: pids, MetricsURLs: metrics, SampleEvery: time.Second,
		Warmup: time.Second})
	requireClean(t, res)
	require.Equal(t, 20, res.ConnsUp)
	require.False(t, res.MintedAuth)
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent, res.Acked, "every sent message acked")
	require.Equal(t, res.Acked, res.Expected, "one delivery owed per message")
	require.Equal(t, res.Sent, res.Delivered, "every sent message delivered")
	require.Equal(t, res.Sent, res.Echoes, "every sender sees its own message")
	require.Positive(t, res.DeliveredPerSec)
	requireOrdered(t, res.SentLatency, res.Sent)
	requireOrdered(t, res.DeliveryLatency, res.Sent)
	requireNodeStats(t, res, pids)
	requireSelfStats(t, res, res.Acked+res.Echoes+res.Delivered) // a sent, an echo and a delivery per message
	requireNodeMetrics(t, res)
	requireSamples(t, res, 4) // at 0 s, each second of the 3 s, and at the end
}

// TestReceiptsRun: the receipts load. Every recipient acknowledges each message
// with received and every second one with read, and the senders get receipts
// back.
func TestReceiptsRun(t *testing.T) {
	n, pids := startNode(t)
	res := run(t, Config{URLs: []string{n.URL}, Conns: 20, Rate: 200, Duration: 2 * time.Second,
		Drain: 10 * time.Second, Procs: 1, NodePIDs: pids, ReadEvery: 2})
	requireClean(t, res)
	require.Positive(t, res.Delivered)
	require.Equal(t, res.Sent, res.Delivered)
	require.Zero(t, res.AcksDropped)
	require.Equal(t, res.Delivered, res.AcksOut, "a received per message delivered")
	require.InDelta(t, float64(res.Delivered)/2, float64(res.ReadsOut), 20, "a read per two messages (per connection, rounded down)")
	require.Positive(t, res.ReceiptsIn, "the senders hear of them")
	require.LessOrEqual(t, res.ReceiptsIn, res.AcksOut+2*res.ReadsOut, "at most a receipt per acknowledgement, and a read's to the reader's own devices")
	require.Contains(t, res.Markdown(), "receipts load")
	require.NotNil(t, res.Host, "the machine's CPU over the measured phase")
	require.Positive(t, res.Host.UserSec+res.Host.SystemSec, "the run used the machine")
	require.Contains(t, res.Markdown(), "machine CPU")
}

// requireSamples checks the series of a run sampled every second: at least n
// samples, each with the node's RSS and Go heap, and a steady-state summary.
func requireSamples(t *testing.T, res *Result, n int) {
	t.Helper()
	require.Empty(t, res.SampleWarnings)
	require.GreaterOrEqual(t, len(res.Samples), n)
	for _, s := range res.Samples {
		require.Positive(t, s.RSSKiB)
		require.NotNil(t, s.HeapInuseBytes)
		require.Positive(t, *s.HeapInuseBytes)
	}
	require.NotNil(t, res.Steady)
	require.NotNil(t, res.Steady.Heap)
	require.Equal(t, float64(res.Samples[len(res.Samples)-1].RSSKiB), res.Steady.RSS.Last)
	require.Contains(t, res.Markdown(), "The nodes through the measured phase")
}

// requireNodeMetrics checks that the node's /metrics were scraped around the
// measured phase and saw it: some parley_ histogram observed values in it, and
// some parley_ counter grew.
func requireNodeMetrics(t *testing.T, res *Result) {
	t.Helper()
	m := res.Metrics
	require.NotNil(t, m)
	require.Empty(t, m.Warnings)
	var observed uint64
	for _, h := range m.Histograms {
		require.True(t, strings.HasPrefix(h.Family, "parley_"), h.Family)
		observed += h.Count
	}
	require.Positive(t, observed, "%+v", m.Histograms)
	grew := 0.0
	for _, c := range m.Counters {
		grew += c.Delta
	}
	require.Positive(t, grew, "%+v", m.Counters)
	require.Contains(t, res.Markdown(), "Which stage owns the tail")
}

// requireSelfStats checks loadgen's own cost: frames counted in the measured
// phase (frames, and receipt frames at most), CPU time spent, and the per-frame
// figure derived from both.
func requireSelfStats(t *testing.T, res *Result, frames uint64) {
	t.Helper()
	s := res.Loadgen
	// And the receipts of what the clients acknowledged (a storm's clients do after
	// catching up, inside the measured phase).
	require.GreaterOrEqual(t, s.FramesIn, frames)
	require.LessOrEqual(t, s.FramesIn, frames+res.ReceiptsIn)
	require.Positive(t, s.CPUSec)
	require.InDelta(t, 1e6*s.CPUSec/float64(s.FramesIn), s.USPerFrame, 1e-6)
	require.InDelta(t, 100*s.CPUSec/res.MeasuredSec, s.CPUPercent, 1e-6)
	require.Zero(t, s.SlowDecodes, "every frame of a run takes the fast JSON path")
	require.Contains(t, res.Markdown(), "µs per frame received")
}

// TestGroupRun: 2 groups of 20 members, all online, 2 senders each, minted
// tokens; every message reaches the 19 other members once.
func TestGroupRun(t *testing.T) {
	n, pids := startNode(t, "PARLEY_TOKEN_SECRET="+testSecret)
	res := run(t, Config{URLs: []string{n.URL}, Scenario: ScenarioGroup, Groups: 2, Members: 20, Senders: 2,
		Rate: 100, Duration: 3 * time.Second, Drain: 10 * time.Second, NodePIDs: pids, TokenSecret: testSecret})
	requireClean(t, res)
	require.Equal(t, 40, res.Conns)
	require.Equal(t, 1, res.Procs)
	require.True(t, res.MintedAuth)
	require.Positive(t, res.Sent)
	require.Equal(t, res.Sent, res.Acked)
	require.Equal(t, 19*res.Acked, res.Expected, "19 other members per message")
	require.Equal(t, res.Expected, res.Delivered)
	require.Equal(t, res.Acked, res.Echoes)
	require.InDelta(t, 300, float64(res.Sent), 60, "100 msgs/s for 3 s")
	requireOrdered(t, res.SentLatency, res.Sent)
	requireOrdered(t, res.DeliveryLatency, res.Delivered)
	require.GreaterOrEqual(t, res.DeliveryLatency.P50Ms, res.SentLatency.P50Ms/2, "a delivery follows the commit")
	requireNodeStats(t, res, pids)
	requireSelfStats(t, res, res.Acked+res.Echoes+res.Delivered)
}

// TestStormRun: 60 clients in 2 groups (30 clients and a sender each) miss 5
// messages, then reconnect at once: each gets exactly its 5.
func TestStormRun(t *testing.T) {
	n, pids := startNode(t)
	res := run(t, Config{URLs: []string{n.URL}, Scenario: ScenarioStorm, Conns: 60, Members: 31, Messages: 5,
		Duration: 30 * time.Second, Drain: 10 * time.Second, NodePIDs: pids})
	requireClean(t, res)
	require.Equal(t, uint64(10), res.Sent, "5 posts in each of 2 groups")
	require.Equal(t, uint64(10), res.Acked)
	require.Equal(t, uint64(300), res.Expected, "5 messages for each of 60 clients")
	require.Equal(t, uint64(300), res.Delivered)
	require.Equal(t, uint64(60), res.CaughtUp)
	require.Zero(t, res.NotCaughtUp)
	require.Equal(t, 60, res.ConnsUp)
	require.Positive(t, res.StormSec)
	require.LessOrEqual(t, res.StormSec, res.MeasuredSec+0.5)
	requireOrdered(t, res.CatchUpLatency, 60)
	requireOrdered(t, res.ReconnectLatency, 60)
	require.InDelta(t, res.StormSec*1000, res.CatchUpLatency.MaxMs, 1, "the storm ends with the last client caught up")
	require.Zero(t, res.DeliveryLatency.Count, "stale messages are not timed as deliveries")
	require.GreaterOrEqual(t, res.SettleSec, 1.0)
	requireNodeStats(t, res, pids)
	requireSelfStats(t, res, res.Delivered+60) // the messages, and each reconnect's synced
}

// TestDMSeesLoss runs 1:1 traffic against a node that commits every message but
// never pushes one live (fault injection): every message owed to an online member
// must be reported lost.
func TestDMSeesLoss(t *testing.T) {
	n, _ := startNode(t, node.FaultHoldDelivery+"=1")
	res, err := Run(testenv.Context(t, 2*time.Minute), Config{URLs: []string{n.URL}, Conns: 4, Rate: 20,
		Duration: 2 * time.Second, Drain: 2 * time.Second, Procs: 1})
	require.NoError(t, err)
	t.Logf("\n%s", res.Markdown())
	require.Positive(t, res.Acked, "the messages were committed")
	require.Equal(t, res.Expected, res.Lost, "none of them was delivered")
	require.Zero(t, res.Delivered)
}
