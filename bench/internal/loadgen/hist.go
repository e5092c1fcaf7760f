package loadgen

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram is log-linear (like HDR histograms): values are counted in whole
// microseconds; below 64 µs each microsecond has its own bucket, above that each
// power of two is split into 64 buckets, so a bucket is at most 1/64 (1.6 %) of its
// value wide. Values above HistMax go to the last bucket (Max stays exact).
const (
	subBits    = 6
	subCount   = 1 << subBits // 64
	HistMax    = 60 * time.Second
	histUnitNs = int64(time.Microsecond)
)

var numBuckets = bucketIndex(uint64(HistMax/time.Microsecond)) + 1

func bucketIndex(u uint64) int {
	if u < subCount {
		return int(u)
	}
	shift := bits.Len64(u) - subBits - 1 // u>>shift is in [64, 128)
	return subCount + shift*subCount + int(u>>shift) - subCount
}

// bucketBounds returns the lowest and the highest value (µs) of bucket i.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := (i - subCount) / subCount
	lo = uint64(subCount+(i-subCount)%subCount) << shift
	return lo, lo + (1 << shift) - 1
}

// Histogram counts durations. Record is safe for concurrent use (atomic adds);
// Snapshot, Merge and Quantile are for one goroutine.
type Histogram struct {
	counts []uint64
	total  atomic.Uint64
	sumNs  atomic.Int64
	minNs  atomic.Int64 // 0 = none yet
	maxNs  atomic.Int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{counts: make([]uint64, numBuckets)} }

// Record counts one duration (negative counts as 0).
func (h *Histogram) Record(d time.Duration) {
	ns := int64(d)
	if ns < 0 {
		ns = 0
	}
	u := uint64(ns / histUnitNs)
	i := bucketIndex(min(u, uint64(HistMax/time.Microsecond)))
	atomic.AddUint64(&h.counts[i], 1)
	h.total.Add(1)
	h.sumNs.Add(ns)
	for {
		m := h.maxNs.Load()
		if ns <= m || h.maxNs.CompareAndSwap(m, ns) {
			break
		}
	}
	v := ns + 1 // stored +1 so that 0 means unset
	for {
		m := h.minNs.Load()
		if (m != 0 && v >= m) || h.minNs.CompareAndSwap(m, v) {
			break
		}
	}
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max is the largest recorded value.
func (h *Histogram) Max() time.Duration { return time.Duration(h.maxNs.Load()) }

// Min is the smallest recorded value.
func (h *Histogram) Min() time.Duration {
	if v := h.minNs.Load(); v > 0 {
		return time.Duration(v - 1)
	}
	return 0
}

// Mean is the average recorded value.
func (h *Histogram) Mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sumNs.Load() / int64(n))
}

// Snapshot returns a copy.
func (h *Histogram) Snapshot() *Histogram {
	c := NewHistogram()
	for i := range h.counts {
		c.counts[i] = atomic.LoadUint64(&h.counts[i])
	}
	c.total.Store(h.total.Load())
	c.sumNs.Store(h.sumNs.Load())
	c.minNs.Store(h.minNs.Load())
	c.maxNs.Store(h.maxNs.Load())
	return c
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil {
		return
	}
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.total.Add(o.total.Load())
	h.sumNs.Add(o.sumNs.Load())
	if m := o.maxNs.Load(); m > h.maxNs.Load() {
		h.maxNs.Store(m)
	}
	if m := o.minNs.Load(); m != 0 && (h.minNs.Load() == 0 || m < h.minNs.Load()) {
		h.minNs.Store(m)
	}
}

// Quantile returns the value at quantile q (0..1): the middle of the bucket that
// holds it, kept within the recorded min and max. It is 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(q*float64(n) + 0.5)
	rank = max(1, min(rank, n))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			v := time.Duration((lo*uint64(histUnitNs) + hi*uint64(histUnitNs) + uint64(histUnitNs)) / 2)
			return min(max(v, h.Min()), h.Max())
		}
	}
	return h.Max()
}

// histJSON is the sparse JSON form: [bucket, count] pairs of the non-empty buckets.
type histJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	Count   uint64      `json:"count"`
	SumNs   int64       `json:"sumNs"`
	MinNs   int64       `json:"minNs"`
	MaxNs   int64       `json:"maxNs"`
}

func (h *Histogram) toJSON() histJSON {
	j := histJSON{Buckets: [][2]uint64{}, Count: h.total.Load(), SumNs: h.sumNs.Load(), MinNs: int64(h.Min()), MaxNs: h.maxNs.Load()}
	for i := range h.counts {
		if c := atomic.LoadUint64(&h.counts[i]); c > 0 {
			j.Buckets = append(j.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return j
}

func histFromJSON(j histJSON) *Histogram {
	h := NewHistogram()
	for _, b := range j.Buckets {
		if b[0] < uint64(len(h.counts)) {
			h.counts[b[0]] += b[1]
		}
	}
	h.total.Store(j.Count)
	h.sumNs.Store(j.SumNs)
	if j.Count > 0 {
		h.minNs.Store(j.MinNs + 1)
	}
	h.maxNs.Store(j.MaxNs)
	return h
}
