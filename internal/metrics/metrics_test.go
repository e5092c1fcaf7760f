package metrics_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/metrics"
)

// Scrape fetches url and parses it with Prometheus's own text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	require.NoError(t, err)
	return families
}

func TestHandlerParsesAndMoves(t *testing.T) {
	m := metrics.New()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	before := scrape(t, srv.URL)
	for _, name := range []string{"parley_connections", "parley_frames_in_total", "parley_stage_seconds",
		"parley_commit_seconds", "go_goroutines", "process_resident_memory_bytes"} {
		require.Contains(t, before, name)
	}

	m.Connected(1)
	m.FrameIn("send")
	m.FrameOut("message")
	m.FrameOut("no-such-type")
	m.Posted(2)
	m.Committed(2)
	m.Since(metrics.StageCommit, metrics.Now()-int64(3*time.Millisecond))
	m.Since(metrics.StageCommit, 0) // unknown start: not recorded
	m.Commit(time.Millisecond, 4, 9, errors.New("boom"))

	after := scrape(t, srv.URL)
	require.Equal(t, 1.0, after["parley_connections"].Metric[0].GetGauge().GetValue())
	require.Equal(t, 1.0, labelled(after["parley_frames_in_total"], "type", "send").GetCounter().GetValue())
	require.Equal(t, 1.0, labelled(after["parley_frames_out_total"], "type", "other").GetCounter().GetValue())
	require.Equal(t, 1.0, after["parley_messages_delivered_total"].Metric[0].GetCounter().GetValue())
	require.Equal(t, 2.0, after["parley_messages_committed_total"].Metric[0].GetCounter().GetValue())
	h := labelled(after["parley_stage_seconds"], "stage", "commit").GetHistogram()
	require.Equal(t, uint64(1), h.GetSampleCount())
	require.InDelta(t, 0.003, h.GetSampleSum(), 0.002)
	require.Equal(t, 1.0, after["parley_commit_errors_total"].Metric[0].GetCounter().GetValue())
	require.Equal(t, 9.0, after["parley_commit_rows"].Metric[0].GetHistogram().GetSampleSum())
}

func TestNilRecordsNothing(t *testing.T) {
	var m *metrics.Metrics
	m.Connected(1)
	m.FrameIn("send")
	m.Since(metrics.StageSent, metrics.Now())
	m.Commit(time.Second, 1, 1, nil)
	m.GaugeFunc("x", "y", nil, func() float64 { return 1 })
}

func labelled(f *dto.MetricFamily, name, value string) *dto.Metric {
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == name && l.GetValue() == value {
				return m
			}
		}
	}
	return nil
}
