package gateway_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/gateway"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// BenchmarkGatewayEcho measures ping → pong round trips through the gateway: N
// clients each write a JSON ping frame and wait for the pong that the handler
// writes back with Socket.Write. One op is one round trip.
func BenchmarkGatewayEcho(b *testing.B) {
	for _, clients := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			cfg := defaultConfig()
			cfg.FrameRate, cfg.FrameBurst = 1e9, 1e9 // no rate limiting here
			pong := &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Pong{Pong: &parleypb.Pong{}}}
			h := newHarness(b, cfg, func(r *recorder) {
				r.onFrame = func(s *gateway.Socket, f *parleypb.ClientFrame) {
					if f.GetPing() != nil {
						_ = s.Write(pong)
					}
				}
			})
			conns := make([]*client.Conn, clients)
			for i := range conns {
				conns[i] = h.dial(b, wire.JSON)
			}
			ping := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}}

			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			var (
				wg       sync.WaitGroup
				errOnce  sync.Once
				firstErr error
			)
			for i, c := range conns {
				n := b.N / clients
				if i < b.N%clients {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						if err := c.Write(ping); err != nil {
							errOnce.Do(func() { firstErr = err })
							return
						}
						f, err := c.Read(waitTimeout)
						if err == nil && f.GetPong() == nil {
							err = fmt.Errorf("want a pong, got %v", f)
						}
						if err != nil {
							errOnce.Do(func() { firstErr = err })
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if firstErr != nil {
				b.Fatal(firstErr)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
		})
	}
}
