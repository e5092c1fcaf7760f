package auth

import (
	"math"
	"sync"
	"time"
)

// Throttle is a token bucket per key (a source address, a username): each key
// may spend burst tokens at once, and its bucket refills at rate tokens per
// second. Buckets are kept for at most entries keys, the least recently used
// dropped first (a dropped bucket starts full again, as an unknown key does; a
// bucket that has refilled is dropped at once). Safe for concurrent use.
//
// A nil *Throttle limits nothing.
type Throttle struct {
	rate  float64
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets *lru[bucket]
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewThrottle returns a Throttle, or nil (no limit) when burst is 0. rate must
// be > 0 and entries > 0 when burst is not 0. now nil means [time.Now].
func NewThrottle(rate float64, burst, entries int, now func() time.Time) *Throttle {
	if burst <= 0 {
		return nil
	}
	if now == nil {
		now = time.Now
	}
	return &Throttle{rate: rate, burst: float64(burst), now: now, buckets: newLRU[bucket](max(entries, 1))}
}

// Take spends one token of key. When there is none it spends nothing and
// returns false and how long until there is one.
func (t *Throttle) Take(key string) (ok bool, retry time.Duration) {
	if t == nil {
		return true, 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	b := t.refill(key, now)
	if b.tokens < 1 {
		return false, time.Duration(math.Ceil((1 - b.tokens) / t.rate * float64(time.Second)))
	}
	b.tokens--
	return true, 0
}

// Refund gives back a token that Take spent (a login that turned out right).
func (t *Throttle) Refund(key string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.refill(key, t.now())
	if b.tokens++; b.tokens >= t.burst {
		t.buckets.remove(key) // a full bucket is the same as none
	}
}

// refill returns key's bucket, created full, with what it gained since it was
// last seen added.
func (t *Throttle) refill(key string, now time.Time) *bucket {
	b, ok := t.buckets.get(key)
	if !ok {
		return t.buckets.put(key, bucket{tokens: t.burst, at: now})
	}
	if gained := now.Sub(b.at).Seconds() * t.rate; gained > 0 {
		b.tokens = min(t.burst, b.tokens+gained)
		b.at = now
	}
	return b
}

// len is how many buckets are kept (tests).
func (t *Throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buckets.len()
}
