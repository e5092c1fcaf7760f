package loadgen

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func within(t *testing.T, want, got time.Duration, rel float64) {
	t.Helper()
	diff := float64(got - want)
	require.LessOrEqualf(t, abs(diff), rel*float64(want)+float64(time.Microsecond), "want %v, got %v", want, got)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

func TestHistogramQuantiles(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var vals []time.Duration
	for range 100000 {
		// log-uniform over 1 µs .. 10 s
		v := time.Duration(float64(time.Microsecond) * math.Pow(10, r.Float64()*7))
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	exact := func(q float64) time.Duration { return vals[int(q*float64(len(vals)))-1] }
	require.Equal(t, uint64(len(vals)), h.Count())
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		within(t, exact(q), h.Quantile(q), 1.0/64)
	}
	require.Equal(t, vals[len(vals)-1], h.Max())
	require.Equal(t, vals[0], h.Min())
	require.Equal(t, h.Max(), h.Quantile(1))
}

func TestHistogramBuckets(t *testing.T) {
	// Every bucket covers its own index, and buckets are contiguous.
	prevHi := uint64(0)
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketBounds(i)
		if i > 0 {
			require.Equal(t, prevHi+1, lo, "bucket %d", i)
		}
		require.Equal(t, i, bucketIndex(lo))
		require.Equal(t, i, bucketIndex(hi))
		require.LessOrEqual(t, float64(hi-lo), float64(lo)/64+1)
		prevHi = hi
	}
	h := NewHistogram()
	h.Record(-time.Second)
	h.Record(2 * HistMax) // clamped into the last bucket, max stays exact
	require.Equal(t, 2*HistMax, h.Max())
	require.Equal(t, time.Duration(0), h.Min())
	require.Equal(t, time.Duration(0), NewHistogram().Quantile(0.99))
}

func TestHistogramMergeAndJSON(t *testing.T) {
	a, b, all := NewHistogram(), NewHistogram(), NewHistogram()
	for i := 1; i <= 2000; i++ {
		d := time.Duration(i) * 37 * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	m := NewHistogram()
	m.Merge(histFromJSON(a.toJSON()))
	m.Merge(histFromJSON(b.toJSON()))
	require.Equal(t, all.Count(), m.Count())
	require.Equal(t, all.Max(), m.Max())
	require.Equal(t, all.Min(), m.Min())
	require.Equal(t, all.Mean(), m.Mean())
	for _, q := range []float64{0.1, 0.5, 0.99, 0.999} {
		require.Equal(t, all.Quantile(q), m.Quantile(q))
	}
	b1, err := json.Marshal(all.toJSON())
	require.NoError(t, err)
	var j histJSON
	require.NoError(t, json.Unmarshal(b1, &j))
	require.Equal(t, all.Quantile(0.99), histFromJSON(j).Quantile(0.99))
}

func TestCheckLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://127.1.2.3", "http://localhost:1", "http://LOCALHOST", "http://[::1]:8080", "http://[::ffff:127.0.0.1]:80"} {
		require.NoError(t, CheckLoopback(ok), ok)
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://example.com", "http://0.0.0.0:8080", "http://[::]:1", "https://127.0.0.1", "ws://127.0.0.1", "127.0.0.1:8080", "http://", "http://128.0.0.1", "http://localhost.evil.com"} {
		require.Error(t, CheckLoopback(bad), bad)
	}
	urls, err := SplitURLs([]string{"http://127.0.0.1:1/, http://127.0.0.1:2", "http://localhost:3"})
	require.NoError(t, err)
	require.Equal(t, []string{"http://127.0.0.1:1", "http://127.0.0.1:2", "http://localhost:3"}, urls)
	_, err = SplitURLs([]string{"http://127.0.0.1:1,http://192.168.1.1:2"})
	require.ErrorContains(t, err, "not loopback")
	_, err = SplitURLs(nil)
	require.Error(t, err)
}

func TestSourceIPs(t *testing.T) {
	require.Nil(t, NewSourceIPs(0, 0).Next())
	s := NewSourceIPs(3, 0)
	var got []string
	for range 7 {
		got = append(got, s.Next().String())
	}
	require.Equal(t, []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.2"}, got)
	s = NewSourceIPs(2, 252) // wraps within 127.0.0.2..254
	require.Equal(t, "127.0.0.254", s.Next().String())
	require.Equal(t, "127.0.0.2", s.Next().String())
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		name           string
		total, n, unit int
		want           []int
	}{
		{"pairs", 10, 3, 2, []int{4, 4, 2}},
		{"odd pairs", 5, 2, 2, []int{2, 3}},
		{"one worker", 7, 1, 2, []int{7}},
		{"whole groups", 1500, 2, 500, []int{1000, 500}},
		{"storm groups with a remainder", 1000, 2, 499, []int{499, 501}},
		{"singles", 10, 4, 1, []int{3, 3, 2, 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := split(c.total, c.n, c.unit)
			require.Equal(t, c.want, got)
			sum := 0
			for _, s := range got {
				sum += s
			}
			require.Equal(t, c.total, sum)
		})
	}
}

func TestProcs(t *testing.T) {
	for _, c := range []struct {
		name     string
		scenario string
		total, u int
		want     int
	}{
		{"small", ScenarioIdle, 100, 1, 1},
		{"exactly one process", ScenarioIdle, MaxConnsPerProc, 1, 1},
		{"one over", ScenarioIdle, MaxConnsPerProc + 1, 1, 2},
		{"cluster of idle", ScenarioIdle, 180000, 1, 10},
		{"storm senders count", ScenarioStorm, 50000, 499, 3},
		{"groups stay whole", ScenarioGroup, 40 * 500, 500, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := autoProcs(c.scenario, c.total, c.u, MaxConnsPerProc)
			require.Equal(t, c.want, got)
			require.NoError(t, checkShares(c.scenario, split(c.total, got, c.u), c.u))
		})
	}
	require.ErrorContains(t, checkShares(ScenarioIdle, []int{MaxConnsPerProc + 1}, 1), "open-file cap")
	require.ErrorContains(t, checkShares(ScenarioStorm, []int{MaxConnsPerProc}, 499), "open-file cap")
}

func TestClientIDs(t *testing.T) {
	w := &worker{cfg: WorkerConfig{RunID: "abc123"}}
	for _, c := range []struct {
		n  uint64
		at time.Duration
	}{{12345, 987654321 * time.Nanosecond}, {0, 0}, {math.MaxUint64, math.MaxInt64}, {1, 10 * time.Minute}} {
		n, at, ok := w.parseID([]byte(w.clientID(c.n, c.at)))
		require.True(t, ok)
		require.Equal(t, c.n, n)
		require.Equal(t, c.at, at)
	}
	for _, bad := range []string{"other.1.2", "abc123.1", "abc123.x!.2", "abc123.1.z!", "", "abc123", "abc123x1.2",
		"abc123..2", "abc123.1.", "abc123.1.-2", "abc123.1.A", "abc123.3w5e11264sgsg.1", "abc123.1.1y2p0ij32e8e8"} {
		_, _, ok := w.parseID([]byte(bad))
		require.False(t, ok, bad)
	}
}

func TestRejectsRemoteURL(t *testing.T) {
	_, err := Run(context.Background(), Config{URLs: []string{"http://203.0.113.7:8080"}, Conns: 2, Duration: time.Second})
	require.ErrorContains(t, err, "not loopback")
}

func TestReadProcSelf(t *testing.T) {
	s, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	require.Positive(t, s.RSSKiB)
	require.GreaterOrEqual(t, s.CPUSec, 0.0)
}
