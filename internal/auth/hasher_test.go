package auth

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func TestHasher(t *testing.T) {
	h, err := NewHasher(bcrypt.MinCost, 2)
	require.NoError(t, err)
	ctx := context.Background()
	hash, err := h.Hash(ctx, "pw-1234567")
	require.NoError(t, err)
	ok, err := h.Check(ctx, hash, "pw-1234567")
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = h.Check(ctx, hash, "pw-7654321")
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, h.CheckNone(ctx, "anything"))
	_, err = h.Hash(ctx, string(make([]byte, 73)))
	require.ErrorIs(t, err, ErrPasswordTooLong)

	_, err = NewHasher(bcrypt.MinCost-1, 1)
	require.Error(t, err)
	_, err = NewHasher(bcrypt.MinCost, -1)
	require.Error(t, err)
}

// Finding 7: no more than the configured number of bcrypt runs at once, whatever
// the number of callers. The bcrypt step is replaced by one that blocks until
// released, so the count is read while every caller is inside Check or waiting.
func TestHasherBoundsConcurrency(t *testing.T) {
	const slots, callers = 2, 6
	h, err := NewHasher(bcrypt.MinCost, slots)
	require.NoError(t, err)
	release := make(chan struct{})
	var inside, peak atomic.Int64
	h.compare = func(_, _ []byte) error {
		n := inside.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		inside.Add(-1)
		return nil
	}
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := h.Check(context.Background(), "h", "p")
			assert.NoError(t, err)
			assert.True(t, ok)
		}()
	}
	require.Eventually(t, func() bool { return h.Running()+h.Waiting() == callers }, 10*time.Second, time.Millisecond)
	require.Equal(t, slots, h.Running())
	require.Equal(t, callers-slots, h.Waiting())
	require.EqualValues(t, slots, inside.Load())

	// A waiter whose context ends gives up without a slot.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := h.Check(ctx, "h", "p"); done <- err }()
	require.Eventually(t, func() bool { return h.Waiting() == callers-slots+1 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)

	close(release)
	wg.Wait()
	require.EqualValues(t, slots, peak.Load())
	require.Zero(t, h.Running())
	require.Zero(t, h.Waiting())
}
