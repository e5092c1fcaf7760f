package gateway_test

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/actors"
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

// BenchmarkChannelFeed measures a channel's live fan-out on one node: one message
// published through an actors.ChannelHub to subs sockets of this gateway over
// loopback (one encoding per message, one write per socket, a fan-out goroutine per
// core). The clients are raw sockets that only count the frames they read (a
// read(2) takes many at once), so that the process CPU per delivery (getrusage) is
// mostly the server's: the hub, the frame writes and the kernel's loopback TCP.
// One op is one message delivered to every socket.
func BenchmarkChannelFeed(b *testing.B) {
	for _, subs := range []int{100, 1000} {
		b.Run(fmt.Sprintf("sockets=%d", subs), func(b *testing.B) {
			h := newHarness(b, defaultConfig(), nil)
			conns := make([]*rawConn, subs)
			for i := range conns {
				conns[i] = h.dialRaw(b, wire.JSON)
			}
			hub := actors.NewChannelHub(nil)
			for i := range subs {
				s := hub.Register(fmt.Sprint("u", i), h.handler(b, i).sock, i)
				hub.Subscribe(s, []string{"channel:bench"})
			}
			var got atomic.Int64
			var wg sync.WaitGroup
			for _, c := range conns {
				_ = c.SetDeadline(time.Time{})
				wg.Add(1)
				go func() {
					defer wg.Done()
					countFrames(c.r, &got)
				}()
			}
			msg := &parleypb.Message{MessageId: 1, Conversation: "channel:bench", Channel: "bench", From: "owner",
				Text: "a post of a typical length, some sixty bytes of text in all", Ts: 1}
			b.ReportAllocs()
			var before, after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				m := proto.Clone(msg).(*parleypb.Message)
				m.MessageId, m.Prev = int64(i+2), int64(i+1)
				hub.Publish("channel:bench", []*parleypb.Message{m})
				for got.Load() < int64(i+1-64)*int64(subs) { // at most 64 messages in flight
					time.Sleep(50 * time.Microsecond)
				}
			}
			deadline := time.Now().Add(waitTimeout)
			for got.Load() < int64(b.N)*int64(subs) && time.Now().Before(deadline) {
				time.Sleep(100 * time.Microsecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			n := got.Load()
			if n < int64(b.N)*int64(subs) {
				b.Fatalf("delivered %d of %d", n, b.N*subs)
			}
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(float64(n)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/delivery")
			for _, c := range conns {
				_ = c.Close()
			}
			wg.Wait()
		})
	}
}

// countFrames reads unmasked server frames from r until it fails, adding one to n
// per frame, without looking at their payloads.
func countFrames(r io.Reader, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	var have []byte
	for {
		k, err := r.Read(buf)
		if err != nil {
			return
		}
		have = append(have, buf[:k]...)
		for len(have) >= 2 {
			size, head := int(have[1]&0x7f), 2
			switch size {
			case 126:
				if len(have) < 4 {
					break
				}
				size, head = int(have[2])<<8|int(have[3]), 4
			case 127:
				return // never this large here
			}
			if len(have) < head+size || (size == 126 && head == 2) {
				break
			}
			have = have[head+size:]
			n.Add(1)
		}
		have = append(have[:0:0], have...)
	}
}
