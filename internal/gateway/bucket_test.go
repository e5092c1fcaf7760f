package gateway

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucketRateAndBurst(t *testing.T) {
	var b bucket
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		require.True(t, b.allow(t0, 10, 5), "burst token %d", i)
	}
	require.False(t, b.allow(t0, 10, 5), "the burst is spent")
	require.False(t, b.allow(t0.Add(50*time.Millisecond), 10, 5), "half a token refilled")
	require.True(t, b.allow(t0.Add(150*time.Millisecond), 10, 5), "one token after 100 ms at 10/s")
	require.False(t, b.allow(t0.Add(150*time.Millisecond), 10, 5))
	later := t0.Add(time.Hour)
	for i := range 5 {
		require.True(t, b.allow(later, 10, 5), "refilled to the burst, no more: %d", i)
	}
	require.False(t, b.allow(later, 10, 5))
}
