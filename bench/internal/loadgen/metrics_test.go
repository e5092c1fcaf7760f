package loadgen

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// Two scrapes of a node, by hand: a stage histogram with two label sets (one
// of which appears only in the second), a histogram without labels, counters,
// and families loadgen must leave alone.
const (
	metricsBefore = `# HELP parley_stage_seconds Duration of each stage.
# TYPE parley_stage_seconds histogram
parley_stage_seconds_bucket{stage="commit",le="0.001"} 10
parley_stage_seconds_bucket{stage="commit",le="0.01"} 20
parley_stage_seconds_bucket{stage="commit",le="0.1"} 30
parley_stage_seconds_bucket{stage="commit",le="+Inf"} 30
parley_stage_seconds_sum{stage="commit"} 0.5
parley_stage_seconds_count{stage="commit"} 30
# HELP parley_commit_rows Rows per commit.
# TYPE parley_commit_rows histogram
parley_commit_rows_bucket{le="1"} 5
parley_commit_rows_bucket{le="10"} 5
parley_commit_rows_bucket{le="+Inf"} 5
parley_commit_rows_sum 5
parley_commit_rows_count 5
# TYPE parley_frames_out_total counter
parley_frames_out_total{type="message"} 100
parley_frames_out_total{type="sent"} 50
# TYPE parley_connections gauge
parley_connections 400
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0.5"} 0.0001
go_gc_duration_seconds_sum 0.01
go_gc_duration_seconds_count 10
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12
`
	metricsAfter = `# TYPE parley_stage_seconds histogram
parley_stage_seconds_bucket{stage="commit",le="0.001"} 10
parley_stage_seconds_bucket{stage="commit",le="0.01"} 110
parley_stage_seconds_bucket{stage="commit",le="0.1"} 129
parley_stage_seconds_bucket{stage="commit",le="+Inf"} 130
parley_stage_seconds_sum{stage="commit"} 1.5
parley_stage_seconds_count{stage="commit"} 130
parley_stage_seconds_bucket{stage="deliver",le="0.001"} 40
parley_stage_seconds_bucket{stage="deliver",le="0.01"} 40
parley_stage_seconds_bucket{stage="deliver",le="0.1"} 40
parley_stage_seconds_bucket{stage="deliver",le="+Inf"} 40
parley_stage_seconds_sum{stage="deliver"} 0.02
parley_stage_seconds_count{stage="deliver"} 40
# TYPE parley_commit_rows histogram
parley_commit_rows_bucket{le="1"} 5
parley_commit_rows_bucket{le="10"} 15
parley_commit_rows_bucket{le="+Inf"} 25
parley_commit_rows_sum 205
parley_commit_rows_count 25
# TYPE parley_frames_out_total counter
parley_frames_out_total{type="message"} 350
parley_frames_out_total{type="sent"} 50
parley_frames_out_total{type="synced"} 4
# TYPE parley_connections gauge
parley_connections 400
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 20
`
)

// metricsServer answers GET /metrics with before, then after, to a request
// with the bearer token (when token is set).
func metricsServer(t *testing.T, token string, bodies ...string) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		if token != "" && r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		i := int(n.Add(1)) - 1
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(bodies[min(i, len(bodies)-1)]))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func histogramOf(t *testing.T, m *NodeMetrics, family, labels string) HistogramDelta {
	t.Helper()
	for _, h := range m.Histograms {
		if h.Family == family && labelString(h.Labels) == labels {
			return h
		}
	}
	t.Fatalf("no histogram %s{%s} in %+v", family, labels, m.Histograms)
	return HistogramDelta{}
}

func counterOf(t *testing.T, m *NodeMetrics, family, labels string) float64 {
	t.Helper()
	for _, c := range m.Counters {
		if c.Family == family && labelString(c.Labels) == labels {
			return c.Delta
		}
	}
	t.Fatalf("no counter %s{%s} in %+v", family, labels, m.Counters)
	return 0
}

func TestMetricsDeltas(t *testing.T) {
	srv, hits := metricsServer(t, "admin-secret", metricsBefore, metricsAfter)
	m := newMetricsScraper([]string{srv.URL + "/metrics"}, "admin-secret")
	ctx := context.Background()
	m.start(ctx)
	m.end(ctx)
	require.Equal(t, int64(2), hits.Load())
	res := m.result()
	require.Empty(t, res.Warnings)

	// commit: 100 observations in the phase, 90 in (1 ms, 10 ms], 9 in (10, 100 ms], 1 above.
	// p50: rank 50 in the second bucket, 1 + 9 × 50/90 ms; p99: rank 99 is the
	// bucket's last, 100 ms.
	commit := histogramOf(t, res, "parley_stage_seconds", "stage=commit")
	require.Equal(t, uint64(100), commit.Count)
	require.InDelta(t, 1.0, commit.Sum, 1e-9)
	require.InDelta(t, 0.001+0.009*50/90, commit.P50, 1e-12)
	require.InDelta(t, 0.1, commit.P99, 1e-12)
	// deliver appeared in the phase: all 40 at most 1 ms, interpolated from 0.
	deliver := histogramOf(t, res, "parley_stage_seconds", "stage=deliver")
	require.Equal(t, uint64(40), deliver.Count)
	require.InDelta(t, 0.0005, deliver.P50, 1e-12)
	require.InDelta(t, 0.00099, deliver.P99, 1e-12)
	// rows: 20 in the phase, 10 in (1, 10], 10 above: p99 in +Inf gives 10.
	rows := histogramOf(t, res, "parley_commit_rows", "")
	require.Equal(t, uint64(20), rows.Count)
	require.InDelta(t, 10.0, rows.P99, 1e-12)
	require.InDelta(t, 10.0, rows.P50, 1e-12, "rank 10 is the (1, 10] bucket's last")

	require.Equal(t, 250.0, counterOf(t, res, "parley_frames_out_total", "type=message"))
	require.Equal(t, 0.0, counterOf(t, res, "parley_frames_out_total", "type=sent"))
	require.Equal(t, 4.0, counterOf(t, res, "parley_frames_out_total", "type=synced"))
	for _, c := range res.Counters {
		require.True(t, strings.HasPrefix(c.Family, "parley_"), c.Family)
	}
	require.Len(t, res.Histograms, 3, "parley_ histograms only: no summaries, no go_")

	r := &Result{Metrics: res}
	md := r.Markdown()
	require.Contains(t, md, "| parley_stage_seconds | stage=commit | 100 | 6.00 ms | 100.00 ms |")
	require.Contains(t, md, "| parley_frames_out_total | type=message | 250 |")
	require.NotContains(t, md, "type=sent", "a counter that did not move is left out of the table")
}

// A node that is down, or refuses the token, is a warning, and the others
// still count.
func TestMetricsFailuresAreWarnings(t *testing.T) {
	good, _ := metricsServer(t, "", metricsBefore, metricsAfter)
	locked, _ := metricsServer(t, "right", metricsBefore)
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	down := "http://" + l.Addr().String() + "/metrics"
	require.NoError(t, l.Close())

	m := newMetricsScraper([]string{good.URL + "/metrics", down, locked.URL + "/metrics"}, "wrong")
	m.start(context.Background())
	m.end(context.Background())
	res := m.result()
	require.Len(t, res.Warnings, 4, "two nodes, two scrapes each: %v", res.Warnings)
	require.Contains(t, strings.Join(res.Warnings, "\n"), "401")
	require.Equal(t, uint64(100), histogramOf(t, res, "parley_stage_seconds", "stage=commit").Count, "the node that answered")
	require.Contains(t, (&Result{Metrics: res}).Markdown(), "metrics warning")
	require.Nil(t, newMetricsScraper(nil, "").result(), "no -metrics: nothing in the result")
}

// Two nodes' series add up.
func TestMetricsSumOverNodes(t *testing.T) {
	a, _ := metricsServer(t, "", metricsBefore, metricsAfter)
	b, _ := metricsServer(t, "", metricsBefore, metricsAfter)
	m := newMetricsScraper([]string{a.URL + "/metrics", b.URL + "/metrics"}, "")
	m.start(context.Background())
	m.end(context.Background())
	res := m.result()
	require.Empty(t, res.Warnings)
	commit := histogramOf(t, res, "parley_stage_seconds", "stage=commit")
	require.Equal(t, uint64(200), commit.Count)
	require.InDelta(t, 0.001+0.009*100/180, commit.P50, 1e-12, "the same shape, twice the counts")
	require.Equal(t, 500.0, counterOf(t, res, "parley_frames_out_total", "type=message"))
}

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, c := range []struct {
		name string
		q    float64
		bs   []bucket
		want float64
	}{
		{"empty", 0.5, []bucket{{1, 0}, {inf, 0}}, 0},
		{"no buckets", 0.5, nil, 0},
		{"first bucket from 0", 0.5, []bucket{{2, 10}, {4, 10}, {inf, 10}}, 1},
		{"middle", 0.75, []bucket{{1, 0}, {2, 4}, {4, 8}, {inf, 8}}, 3},
		{"in +Inf: the highest bound", 0.99, []bucket{{1, 1}, {2, 2}, {inf, 10}}, 2},
		{"a negative first bound", 0.1, []bucket{{-1, 5}, {0, 10}, {inf, 10}}, -1},
		// 4 after 6 is read as 6: rank 5 falls in the first bucket, 0 + 1 × 5/6.
		{"counts not monotonic are raised", 0.5, []bucket{{1, 6}, {2, 4}, {inf, 10}}, 5.0 / 6},
		{"rank in a later bucket after a raised one", 0.7, []bucket{{1, 6}, {2, 4}, {4, 8}, {inf, 10}}, 2 + 2*(7.0-6)/2},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := bucketQuantile(c.q, append([]bucket(nil), c.bs...))
			require.InDelta(t, c.want, got, 1e-12)
		})
	}
}

// FindMetrics finds the port of the node's process that serves /metrics: here
// the test process itself, with a "node" listener and a metrics server.
func TestFindMetrics(t *testing.T) {
	srv, _ := metricsServer(t, "", metricsBefore)
	node, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer node.Close()
	found, warnings := FindMetrics(context.Background(), []string{"http://" + node.Addr().String()}, "")
	require.Empty(t, warnings)
	require.Equal(t, []string{srv.URL + "/metrics"}, found)

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	gone := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	found, warnings = FindMetrics(context.Background(), []string{"http://127.0.0.1:" + strconv.Itoa(gone)}, "")
	require.Len(t, warnings, 1, "nothing listens: a warning")
	require.Equal(t, []string{"http://127.0.0.1:" + strconv.Itoa(gone+100) + "/metrics"}, found, "cluster.sh's layout as the guess")
}
