package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
)

// scrape reads a node's /metrics with Prometheus's own text parser.
func scrape(t *testing.T, n *testenv.Node) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(n.AdminURL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	require.NoError(t, err, "the exposition parses")
	return families
}

// value is a counter's or gauge's value, or a histogram's count, of the series of
// family name whose labels include the given pairs (all series summed).
func value(f map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	fam, ok := f[name]
	if !ok {
		return -1
	}
	var sum float64
	for _, m := range fam.Metric {
		if !hasLabels(m, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i+1 < len(pairs); i += 2 {
		found := false
		for _, l := range m.Label {
			found = found || (l.GetName() == pairs[i] && l.GetValue() == pairs[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

// A node's /metrics parses, and its counters and stage histograms move when
// messages flow.
func TestMetricsMoveWithTraffic(t *testing.T) {
	n := startNode(t, fastConfig)
	before := scrape(t, n)
	for _, name := range []string{"parley_connections", "parley_stage_seconds", "parley_commit_seconds",
		"parley_grains_active", "parley_commit_backlog", "go_memstats_heap_inuse_bytes", "process_cpu_seconds_total"} {
		require.Contains(t, before, name)
	}
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac, bc := dial(t, n, alice), dial(t, n, bob)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)
	syncNow(t, bc, br, nil)
	const count = 5
	for i := range count {
		require.NoError(t, ac.Write(sendFrame(fmt.Sprint("m", i), bob.UserID, "measured")))
	}
	br.waitFor(t, 10*time.Second, "messages", func(r *reader) bool { return len(r.messages) == count })
	ar.waitFor(t, 10*time.Second, "sent and echoes", func(r *reader) bool { return len(r.sent) == count && len(r.messages) == count })

	after := scrape(t, n)
	require.Equal(t, 2.0, value(after, "parley_connections"))
	require.Equal(t, float64(count), value(after, "parley_frames_in_total", "type", "send")-value(before, "parley_frames_in_total", "type", "send"))
	require.Equal(t, float64(count), value(after, "parley_frames_out_total", "type", "sent")-value(before, "parley_frames_out_total", "type", "sent"))
	require.Equal(t, float64(count), value(after, "parley_messages_committed_total")-value(before, "parley_messages_committed_total"))
	require.Equal(t, float64(2*count), value(after, "parley_messages_delivered_total")-value(before, "parley_messages_delivered_total"),
		"each message to bob and to alice's own queue")
	for stage, want := range map[string]float64{"grain": count, "commit": count, "sent": count,
		"fanout": 2 * count, "deliver": 2 * count, "delivery": 2 * count} {
		require.Equal(t, want, value(after, "parley_stage_seconds", "stage", stage)-value(before, "parley_stage_seconds", "stage", stage), stage)
	}
	require.Positive(t, value(after, "parley_commit_seconds")-value(before, "parley_commit_seconds"))
	require.GreaterOrEqual(t, value(after, "parley_grains_active", "kind", "Conversation"), 1.0)
	require.GreaterOrEqual(t, value(after, "parley_grains_active", "kind", "User"), 2.0)
}
