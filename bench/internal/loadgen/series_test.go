package loadgen

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ptr(v float64) *float64 { return &v }

func TestSteadyOf(t *testing.T) {
	samples := []Sample{
		{Sec: 0, RSSKiB: 50_000, HeapInuseBytes: ptr(10)}, // warm-up: left out
		{Sec: 60, RSSKiB: 90_000, HeapInuseBytes: ptr(40)},
		{Sec: 120, RSSKiB: 100_000, HeapInuseBytes: ptr(20)},
		{Sec: 130, RSSKiB: 110_000, HeapInuseBytes: ptr(30)},
		{Sec: 140, RSSKiB: 90_000, HeapInuseBytes: ptr(25)},
	}
	st := steadyOf(samples, 2*time.Minute)
	require.NotNil(t, st)
	require.Equal(t, 3, st.Samples, "from 120 s on")
	require.Equal(t, Spread{Min: 90_000, Max: 110_000, Last: 90_000, Mean: 100_000, SpreadPct: 20}, st.RSS)
	require.NotNil(t, st.Heap)
	require.Equal(t, 20.0, st.Heap.Min)
	require.Equal(t, 30.0, st.Heap.Max)
	require.Equal(t, 25.0, st.Heap.Last)
	require.InDelta(t, 40.0, st.Heap.SpreadPct, 1e-9, "10 over a mean of 25")

	samples[3].HeapInuseBytes = nil
	require.Nil(t, steadyOf(samples, 2*time.Minute).Heap, "a sample without the heap: no heap summary")
	require.Nil(t, steadyOf(samples, time.Hour), "no sample after the warm-up")
}

// The sampler reads /proc (this process stands for a node) and the heap gauge
// from /metrics, from its start until stop, and the report shows the series.
func TestSampler(t *testing.T) {
	srv, _ := metricsServer(t, "", "# TYPE go_memstats_heap_inuse_bytes gauge\ngo_memstats_heap_inuse_bytes 4.194304e+06\n")
	node := newNodeSampler([]int{os.Getpid()})
	metrics := newMetricsScraper([]string{srv.URL + "/metrics", srv.URL + "/metrics"}, "")
	s := startSampler(context.Background(), 50*time.Millisecond, node, metrics)
	require.NotNil(t, s)
	time.Sleep(180 * time.Millisecond)
	samples, warnings := s.stop(context.Background())
	require.Empty(t, warnings)
	require.GreaterOrEqual(t, len(samples), 4, "one at the start, every 50 ms, one at the stop")
	for i, smp := range samples {
		require.Positive(t, smp.RSSKiB)
		require.NotNil(t, smp.HeapInuseBytes)
		require.Equal(t, 2*4194304.0, *smp.HeapInuseBytes, "summed over the two URLs")
		if i > 0 {
			require.Greater(t, smp.Sec, samples[i-1].Sec)
		}
	}
	r := &Result{Samples: samples, Steady: steadyOf(samples, 0)}
	md := r.Markdown()
	require.Contains(t, md, "| 8.0 MiB |")
	require.Contains(t, md, "spread")

	require.Nil(t, startSampler(context.Background(), 0, node, metrics), "not asked for")
	require.Nil(t, startSampler(context.Background(), time.Second, newNodeSampler(nil), newMetricsScraper(nil, "")),
		"nothing to sample")

	broken := newMetricsScraper([]string{srv.URL + "/nope"}, "")
	s = startSampler(context.Background(), time.Hour, node, broken)
	samples, warnings = s.stop(context.Background())
	require.Len(t, samples, 2)
	require.Nil(t, samples[0].HeapInuseBytes)
	require.Len(t, warnings, 1, "the same failure is noted once")
	require.True(t, strings.Contains(warnings[0], "404"), warnings[0])
}

// A long table is thinned to at most maxSeriesRows rows, the last sample kept.
func TestSeriesTableIsCompact(t *testing.T) {
	var samples []Sample
	for i := range 61 {
		samples = append(samples, Sample{Sec: float64(10 * i), RSSKiB: 1024 * int64(100+i), CPUSec: float64(i)})
	}
	md := (&Result{Samples: samples}).Markdown()
	rows := strings.Count(md, " MiB | – |")
	require.LessOrEqual(t, rows, maxSeriesRows)
	require.GreaterOrEqual(t, rows, maxSeriesRows-2)
	require.Contains(t, md, "| 600 s | 160.0 MiB |", "the last sample")
	require.Contains(t, md, "| 10 % |", "CPU over the rows' interval")
}
