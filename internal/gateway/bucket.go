package gateway

import "time"

// bucket is a token bucket for one socket's inbound frames: it holds up to burst
// tokens, refills at rate per second, and a frame takes one. It is a few words
// where golang.org/x/time/rate's Limiter is a mutex and six fields: every socket
// has one, and the socket's read state (rmu) already serializes its use.
type bucket struct {
	tokens float64
	last   int64 // Unix ns of the last refill; 0: full
}

// allow takes a token at now, refilling first; false means over the rate.
func (b *bucket) allow(now time.Time, rate float64, burst int) bool {
	t := now.UnixNano()
	if b.last == 0 {
		b.tokens = float64(burst)
	} else if d := t - b.last; d > 0 {
		b.tokens = min(float64(burst), b.tokens+rate*float64(d)/1e9)
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
