package auth

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestThrottle(t *testing.T) {
	clk := &clock{t: epoch}
	th := NewThrottle(0.5, 3, 100, clk.now) // a token every 2s, 3 at once
	for i := range 3 {
		ok, _ := th.Take("a")
		require.True(t, ok, "take %d", i+1)
	}
	ok, retry := th.Take("a")
	require.False(t, ok, "the 4th in a burst")
	require.Equal(t, 2*time.Second, retry)
	ok, _ = th.Take("b")
	require.True(t, ok, "other keys have their own bucket")

	clk.set(epoch.Add(1500 * time.Millisecond))
	ok, retry = th.Take("a")
	require.False(t, ok)
	require.Equal(t, 500*time.Millisecond, retry)
	clk.set(epoch.Add(2 * time.Second))
	ok, _ = th.Take("a")
	require.True(t, ok, "refilled one token")
	ok, _ = th.Take("a")
	require.False(t, ok)

	th.Refund("a")
	ok, _ = th.Take("a")
	require.True(t, ok, "a refunded token can be spent again")

	// Refilled buckets are dropped: they are the same as no bucket.
	clk.set(epoch.Add(time.Hour))
	th.Refund("b")
	require.Equal(t, 1, th.len())
}

// The buckets kept are bounded: the least recently used key is dropped first.
func TestThrottleBoundsMemory(t *testing.T) {
	clk := &clock{t: epoch}
	th := NewThrottle(0.1, 1, 3, clk.now)
	for i := range 1000 {
		ok, _ := th.Take(fmt.Sprint("k", i))
		require.True(t, ok)
	}
	require.Equal(t, 3, th.len())
	ok, _ := th.Take("k999")
	require.False(t, ok, "a recent key keeps its bucket")
	ok, _ = th.Take("k0")
	require.True(t, ok, "a dropped key starts full")
}

func TestThrottleOff(t *testing.T) {
	th := NewThrottle(1, 0, 10, nil)
	require.Nil(t, th)
	for range 100 {
		ok, _ := th.Take("a")
		require.True(t, ok)
	}
	th.Refund("a")
}
