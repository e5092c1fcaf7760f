package fanceiling

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRunCountsEveryFrame runs a small ceiling with the reader in this process:
// every burst reaches every socket once, at a fixed rate and as fast as it goes,
// with every frame split over reads and put back together.
func TestRunCountsEveryFrame(t *testing.T) {
	defer func(n int) { readBuf = n }(readBuf)
	readBuf = 300 // under the 1000-byte frame
	cfg := Config{Conns: 50, Size: 1000, Rates: []int{40, 0}, Duration: 300 * time.Millisecond, Writers: 2}
	done := make(chan error, 1)
	spawn := func(addr string) (io.WriteCloser, io.Reader, error) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		go func() { done <- Read(addr, cfg.Conns, cfg.Size, 2, inR, outW); outW.Close() }()
		return inW, outR, nil
	}
	phases, err := Run(cfg, spawn)
	require.NoError(t, err)
	require.Len(t, phases, 2)
	fixed := phases[0]
	require.Equal(t, 12, fixed.Bursts, "40 bursts/s for 300 ms")
	require.Equal(t, uint64(12*50), fixed.Owed)
	for _, p := range phases {
		require.Positive(t, p.Owed)
		require.Equal(t, p.Owed, p.Deliveries, "rate %d: every frame read once", p.Rate)
		require.Positive(t, p.P99Ms)
		require.GreaterOrEqual(t, p.MaxMs, p.P99Ms)
	}
	require.Greater(t, phases[1].Bursts, fixed.Bursts, "as fast as it goes writes more than 40/s")
	md := Markdown(cfg, phases)
	require.Contains(t, md, "| 40 | 40.0 | 2000 | 600 / 600 |")
	require.Equal(t, 4, strings.Count(md, "\n|"), "a header, a rule and two rows")
	select {
	case err := <-done:
		require.NoError(t, err) // the writer closed its side: the reader ends without error
	case <-time.After(5 * time.Second):
		t.Fatal("the reader did not end when its input closed")
	}
}
