package wsecho

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkEcho measures round trips through the in-process bare server: a few
// connections each write a 64-byte binary frame and wait for its echo. One op is
// one round trip; the allocations are the server's and the client's together.
func BenchmarkEcho(b *testing.B) {
	const conns, size = 4, 64
	s := mustServe(b)
	cs := mustDial(b, s.Addr(), conns)
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	start := time.Now()
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for i, c := range cs {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := roundTrips(c, i, n, size); err != nil {
				errOnce.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "frames/s")
}

// roundTrips writes n frames on c, one at a time, checking each echo.
func roundTrips(c *client, idx, n, size int) error {
	p := make([]byte, size)
	buf := make([]byte, size)
	for seq := range n {
		fill(p, idx, uint64(seq))
		if err := c.writeFrame(p); err != nil {
			return err
		}
		got, err := c.readFrame(c.r, buf)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, p) {
			return fmt.Errorf("conn %d: echo %d differs", idx, seq)
		}
	}
	return nil
}
