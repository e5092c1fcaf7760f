package actors

import (
	"math"
	"time"
)

// bucket is a token bucket that may go into debt: a read whose cost is known only
// after it ran (the entries it returned) is charged in full, and the next waits
// until the bucket is back to one token. A zero rate is no limit.
type bucket struct {
	tokens, rate, burst float64
	at                  time.Time // of the last refill
}

func newBucket(rate, burst float64) *bucket {
	return &bucket{tokens: burst, rate: rate, burst: burst, at: time.Now()}
}

func (b *bucket) refill(now time.Time) {
	if b.rate > 0 {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	}
	b.at = now
}

// ready reports whether the bucket has a token to spend.
func (b *bucket) ready() bool {
	if b == nil || b.rate <= 0 {
		return true
	}
	b.refill(time.Now())
	return b.tokens >= 1
}

// spend takes n tokens, into debt if need be.
func (b *bucket) spend(n float64) {
	if b != nil && b.rate > 0 {
		b.refill(time.Now())
		b.tokens -= n
	}
}

// take spends one token if there is one.
func (b *bucket) take() bool {
	if !b.ready() {
		return false
	}
	b.spend(1)
	return true
}

// wait is how long until the bucket holds a token again.
func (b *bucket) wait() time.Duration {
	if b == nil || b.rate <= 0 {
		return 0
	}
	b.refill(time.Now())
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// set changes the rate and burst, keeping the tokens within the new burst.
func (b *bucket) set(rate, burst float64) {
	b.refill(time.Now())
	b.rate, b.burst = rate, burst
	b.tokens = math.Min(b.tokens, burst)
}
