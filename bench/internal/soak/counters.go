package soak

import (
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
)

// counters are the run's client-side figures; every field is safe for
// concurrent use.
type counters struct {
	attempted, acked, skipped                     atomic.Int64
	resendReconnect, resendRetry, resendTimeout   atomic.Int64
	repeatedSent, lateErrors                      atomic.Int64
	delivered, seqRepeats, queueBehind, syncAsked atomic.Int64
	dials, dialFailures, planned, rehomes         atomic.Int64
	unknownSent, convMismatch, dedupeMismatch     atomic.Int64
	rejected, otherErrors                         atomic.Int64
	dropsOn                                       []atomic.Int64 // connections that broke without a close frame, by node
	mu                                            sync.Mutex
	closes                                        map[string]int64 // connections ended by the server or the network, by cause
	retries                                       map[string]int64 // sends answered unavailable / rate_limited
	examples                                      []string         // the first problems seen, for the report
}

func newCounters(nodes int) *counters {
	return &counters{dropsOn: make([]atomic.Int64, nodes), closes: map[string]int64{}, retries: map[string]int64{}}
}

// maxExamples bounds the problems kept word for word.
const maxExamples = 20

// note counts a problem and keeps its description while there are few.
func (c *counters) note(n *atomic.Int64, format string, args ...any) {
	n.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.examples) < maxExamples {
		c.examples = append(c.examples, fmt.Sprintf(format, args...))
	}
}

// lost counts a connection that ended by itself: close code, or 0 for none.
func (c *counters) lost(code int) {
	cause := "no close frame (reset/EOF/timeout)"
	if code != 0 {
		cause = "close " + strconv.Itoa(code)
	}
	c.mu.Lock()
	c.closes[cause]++
	c.mu.Unlock()
}

func (c *counters) retryAnswers(code string) {
	c.mu.Lock()
	c.retries[code]++
	c.mu.Unlock()
}

func (c *counters) snapshotMaps() (closes, retries map[string]int64, examples []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.closes), maps.Clone(c.retries), append([]string(nil), c.examples...)
}
