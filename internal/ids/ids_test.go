package ids

import (
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// at returns the instant ms milliseconds after Epoch.
func at(ms int64) time.Time { return Epoch.Add(time.Duration(ms) * time.Millisecond) }

func seqOf(id int64) int64 { return id & maxSeq }

func requireStrictlyIncreasing(t *testing.T, ids []int64) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		if ids[i] <= ids[i-1] {
			require.Failf(t, "ids not strictly increasing", "ids[%d]=%d <= ids[%d]=%d", i, ids[i], i-1, ids[i-1])
		}
	}
}

func TestNewNodeRange(t *testing.T) {
	tests := []struct {
		node    int64
		wantErr bool
	}{
		{-1, true},
		{math.MinInt64, true},
		{0, false},
		{1, false},
		{MaxNode, false},
		{MaxNode + 1, true},
		{math.MaxInt64, true},
	}
	for _, tt := range tests {
		g, err := New(tt.node)
		if tt.wantErr {
			require.ErrorIs(t, err, ErrNodeRange, "node %d", tt.node)
			require.Nil(t, g)
			continue
		}
		require.NoError(t, err, "node %d", tt.node)
		require.Equal(t, tt.node, g.Node())
		require.Equal(t, tt.node, NodeOf(g.Next()))
	}
}

func TestConstants(t *testing.T) {
	require.Equal(t, 1023, MaxNode)
	require.Equal(t, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Epoch)
	require.Equal(t, 41, timeBits)
}

func TestFieldsRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		node int64
		ms   int64
	}{
		{"epoch node0", 0, 0},
		{"epoch maxnode", MaxNode, 0},
		{"one ms", 5, 1},
		{"2025", 42, time.Date(2025, 6, 7, 8, 9, 10, 123e6, time.UTC).Sub(Epoch).Milliseconds()},
		{"max ms", 7, maxMillis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.node, WithClock(func() time.Time { return at(tt.ms) }))
			require.NoError(t, err)
			id := g.Next()
			require.GreaterOrEqual(t, id, int64(0))
			require.Equal(t, tt.ms, Millis(id))
			require.Equal(t, tt.node, NodeOf(id))
			require.Equal(t, int64(0), seqOf(id))
			require.True(t, at(tt.ms).Equal(Time(id)), "Time(id)=%v want %v", Time(id), at(tt.ms))
			require.Equal(t, at(tt.ms).UnixMilli(), UnixMillis(id))
			require.Equal(t, tt.ms, g.LastMillis())
			// Exact layout.
			require.Equal(t, tt.ms<<22|tt.node<<12, id)

			id2 := g.Next()
			require.Equal(t, id+1, id2, "same ms: sequence +1")
			require.Equal(t, tt.node, NodeOf(id2))
		})
	}
}

func TestNextUsesWallClock(t *testing.T) {
	g, err := New(3)
	require.NoError(t, err)
	before := time.Now().UnixMilli()
	id := g.Next()
	after := time.Now().UnixMilli()
	require.GreaterOrEqual(t, UnixMillis(id), before)
	require.LessOrEqual(t, UnixMillis(id), after)
}

func TestClockAdvanceResetsSequence(t *testing.T) {
	clk := newFakeClock(at(1000))
	g, err := New(9, WithClock(clk.Now))
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		g.Next()
	}
	clk.Add(time.Millisecond)
	id := g.Next()
	require.Equal(t, int64(1001), Millis(id))
	require.Equal(t, int64(0), seqOf(id))
}

func TestConcurrentNoDuplicates(t *testing.T) {
	const goroutines, perG = 8, 50_000
	g, err := New(17)
	require.NoError(t, err)

	results := make([][]int64, goroutines)
	var wg sync.WaitGroup
	for w := range goroutines {
		results[w] = make([]int64, perG)
		wg.Go(func() {
			out := results[w]
			for i := range out {
				out[i] = g.Next()
			}
		})
	}
	wg.Wait()

	all := make([]int64, 0, goroutines*perG)
	for _, out := range results {
		requireStrictlyIncreasing(t, out) // per-goroutine order
		all = append(all, out...)
	}
	slices.Sort(all)
	requireStrictlyIncreasing(t, all) // sorted and strictly increasing == no duplicates
	for _, id := range all {
		require.Equal(t, int64(17), NodeOf(id))
	}
	require.Equal(t, Millis(all[len(all)-1]), g.LastMillis())
}

func TestClockStepsBack(t *testing.T) {
	start := int64(10_000_000)
	clk := newFakeClock(at(start))
	g, err := New(1, WithClock(clk.Now))
	require.NoError(t, err)

	var got []int64
	for i := 0; i < 100; i++ {
		got = append(got, g.Next())
		clk.Add(time.Millisecond)
	}
	high := g.LastMillis()
	require.Equal(t, start+99, high)

	clk.Add(-5 * time.Second) // clock jumps back
	for i := 0; i < 6000; i++ {
		id := g.Next()
		require.GreaterOrEqual(t, Millis(id), high, "id went back in time with the clock")
		got = append(got, id)
		if i%100 == 0 {
			clk.Add(time.Millisecond) // still far behind the logical ms
		}
	}
	// 6000 ids at the held-back ms overflow the sequence once: high, high+1.
	require.Equal(t, high+1, g.LastMillis())

	clk.Add(10 * time.Second) // clock catches up and overtakes
	id := g.Next()
	got = append(got, id)
	require.Equal(t, Millis(id), clk.Now().UnixMilli()-Epoch.UnixMilli())
	require.Equal(t, int64(0), seqOf(id))

	requireStrictlyIncreasing(t, got)
}

func TestSequenceOverflowFrozenClock(t *testing.T) {
	const n = 10_000
	frozen := int64(123_456)
	g, err := New(MaxNode, WithClock(func() time.Time { return at(frozen) }))
	require.NoError(t, err)

	got := make([]int64, n)
	for i := range got {
		got[i] = g.Next()
	}
	requireStrictlyIncreasing(t, got)
	for i, id := range got {
		// 4096 ids per ms, then the logical ms moves forward by one.
		require.Equal(t, frozen+int64(i/4096), Millis(id), "id %d", i)
		require.Equal(t, int64(i%4096), seqOf(id), "id %d", i)
		require.Equal(t, int64(MaxNode), NodeOf(id))
	}
	require.Equal(t, frozen+2, g.LastMillis())
}

func TestNextAfter(t *testing.T) {
	const ours = int64(50_000)
	ahead, err := New(2, WithClock(func() time.Time { return at(ours + 10_000) }))
	require.NoError(t, err)
	aheadID := ahead.Next()

	tests := []struct {
		name    string
		min     int64
		wantMs  int64 // ms of the returned id
		wantSeq int64
	}{
		{"min from node ahead in time", aheadID, ours + 10_001, 0},
		{"min ahead with max node and seq", (ours+5)<<22 | MaxNode<<12 | maxSeq, ours + 6, 0},
		{"min at our ms from higher node", ours<<22 | MaxNode<<12, ours + 1, 0},
		{"min in the past", (ours - 100) << 22, ours, 1},
		{"min zero", 0, ours, 1},
		{"min negative", -1, ours, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock(at(ours))
			g, err := New(1, WithClock(clk.Now))
			require.NoError(t, err)
			first := g.Next()
			require.Equal(t, ours, Millis(first))

			id := g.NextAfter(tt.min)
			require.Greater(t, id, tt.min)
			require.Greater(t, id, first)
			require.Equal(t, tt.wantMs, Millis(id))
			require.Equal(t, tt.wantSeq, seqOf(id))
			require.Equal(t, int64(1), NodeOf(id))
			require.Equal(t, tt.wantMs, g.LastMillis())

			// Later ids stay above, even though our clock is behind, and
			// even after the clock steps back.
			prev := id
			for i := 0; i < 5000; i++ {
				if i == 2500 {
					clk.Add(-time.Second)
				}
				next := g.Next()
				require.Greater(t, next, prev)
				prev = next
			}
		})
	}
}

func TestNextAfterClockAheadOfMin(t *testing.T) {
	clk := newFakeClock(at(1000))
	g, err := New(4, WithClock(clk.Now))
	require.NoError(t, err)
	g.Next()
	min := int64(1500) << 22
	clk.Add(time.Second) // our clock (2000) is now ahead of min (1500)
	id := g.NextAfter(min)
	require.Equal(t, int64(2000), Millis(id), "should use the clock, not min+1")
	require.Equal(t, int64(0), seqOf(id))
}

func TestNextAfterRepeatedSameMin(t *testing.T) {
	g, err := New(6, WithClock(func() time.Time { return at(10) }))
	require.NoError(t, err)
	min := int64(1_000) << 22
	prev := min
	for i := 0; i < 10_000; i++ {
		id := g.NextAfter(min)
		require.Greater(t, id, prev)
		prev = id
	}
	// 10,000 ids after ms 1000: 4096 at 1001, 4096 at 1002, rest at 1003.
	require.Equal(t, int64(1_003), Millis(prev))
}

func TestNextAfterOverflowPanics(t *testing.T) {
	g, err := New(0)
	require.NoError(t, err)
	require.Panics(t, func() { g.NextAfter(math.MaxInt64) })
}

func TestWithFloor(t *testing.T) {
	const clock = int64(5_000)
	tests := []struct {
		name       string
		floors     []int64
		wantBefore int64 // LastMillis before the first id
		wantMs     int64 // ms of the first id
		wantSeq    int64
	}{
		{"no floor", nil, -1, clock, 0},
		{"floor ahead of clock", []int64{clock + 100}, clock + 100, clock + 101, 0},
		{"floor equal to clock", []int64{clock}, clock, clock + 1, 0},
		{"floor just behind clock", []int64{clock - 1}, clock - 1, clock, 0},
		{"floor far behind clock", []int64{10}, 10, clock, 0},
		{"highest of several floors", []int64{clock + 7, clock + 3}, clock + 7, clock + 8, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := []Option{WithClock(func() time.Time { return at(clock) })}
			for _, f := range tt.floors {
				opts = append(opts, WithFloor(f))
			}
			g, err := New(8, opts...)
			require.NoError(t, err)
			require.Equal(t, tt.wantBefore, g.LastMillis())

			id := g.Next()
			require.Equal(t, tt.wantMs, Millis(id))
			require.Equal(t, tt.wantSeq, seqOf(id))
			require.Equal(t, tt.wantMs, g.LastMillis())
			for _, f := range tt.floors {
				for i := 0; i < 5000; i++ {
					require.Greater(t, Millis(g.Next()), f)
				}
			}
		})
	}
}

func TestWithFloorHandOver(t *testing.T) {
	// A previous holder of node 5 ran with a clock 3 s ahead of ours.
	oldClk := newFakeClock(at(100_000))
	old, err := New(5, WithClock(oldClk.Now))
	require.NoError(t, err)
	var oldIDs []int64
	for i := 0; i < 5000; i++ {
		oldIDs = append(oldIDs, old.Next())
	}
	hw := old.LastMillis()

	g, err := New(5, WithClock(func() time.Time { return at(97_000) }), WithFloor(hw))
	require.NoError(t, err)
	first := g.Next()
	for _, id := range oldIDs {
		require.Greater(t, first, id)
	}
}

func TestWithClockNilKeepsDefault(t *testing.T) {
	g, err := New(1, WithClock(nil))
	require.NoError(t, err)
	require.Greater(t, g.Next(), int64(0))
}

func TestNextAllocs(t *testing.T) {
	g, err := New(1)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(1000, func() { g.Next() })
	require.Zero(t, allocs)
	allocs = testing.AllocsPerRun(1000, func() { g.NextAfter(12345) })
	require.Zero(t, allocs)
}
