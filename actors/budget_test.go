package actors

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucket(t *testing.T) {
	b := newBucket(100, 3)
	for range 3 {
		require.True(t, b.take())
	}
	require.False(t, b.take(), "the burst is spent")
	require.Greater(t, b.wait(), time.Duration(0))
	require.LessOrEqual(t, b.wait(), 10*time.Millisecond)
	time.Sleep(25 * time.Millisecond)
	require.True(t, b.take(), "refilled at the rate")

	d := newBucket(1000, 10)
	d.spend(510) // a read charged after it ran: 500 into debt
	require.False(t, d.ready())
	require.InDelta(t, 0.5, d.wait().Seconds(), 0.05)

	var unlimited *bucket
	require.True(t, unlimited.take())
	require.True(t, newBucket(0, 0).take(), "a zero rate is no limit")

	s := newBucket(10, 10)
	s.set(5, 2)
	require.True(t, s.take())
	require.True(t, s.take())
	require.False(t, s.take(), "a smaller burst caps what was saved")
}
