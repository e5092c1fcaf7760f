package loadgen

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// With Config.SampleEvery the nodes are sampled all through the measured phase
// (a long dm run at a steady rate, for instance): RSS and CPU from /proc, the Go
// heap from /metrics. The samples after Config.Warmup say whether memory holds
// steady.

// heapGauge is the Go heap in use, from client_golang's Go collector.
const heapGauge = "go_memstats_heap_inuse_bytes"

// Sample is the nodes at one moment of the measured phase, summed over them.
type Sample struct {
	Sec    float64 `json:"sec"` // since the measured phase started
	RSSKiB int64   `json:"rssKiB,omitempty"`
	CPUSec float64 `json:"cpuSec,omitempty"` // since the nodes started
	// HeapInuseBytes is go_memstats_heap_inuse_bytes summed over the nodes; nil
	// when some node's /metrics did not give it.
	HeapInuseBytes *float64 `json:"heapInuseBytes,omitempty"`
}

// Steady is the samples taken after the warm-up: memory's range, last value
// and spread ((max − min) / mean).
type Steady struct {
	WarmupSec float64 `json:"warmupSec"`
	Samples   int     `json:"samples"`
	RSS       Spread  `json:"rssKiB"`
	Heap      *Spread `json:"heapInuseBytes,omitempty"`
}

// Spread summarizes one series.
type Spread struct {
	Min       float64 `json:"min"`
	Max       float64 `json:"max"`
	Last      float64 `json:"last"`
	Mean      float64 `json:"mean"`
	SpreadPct float64 `json:"spreadPct"` // (max − min) / mean, in %
}

// sampler takes samples every `every` until stopped.
type sampler struct {
	every   time.Duration
	node    *nodeSampler
	metrics *metricsScraper
	start   time.Time

	mu       sync.Mutex
	samples  []Sample
	warnings []string
	quit     chan struct{} // stop: no more samples from run
	done     chan struct{}
}

// startSampler starts sampling now (the measured phase's start); nil when
// there is nothing to sample.
func startSampler(ctx context.Context, every time.Duration, node *nodeSampler, metrics *metricsScraper) *sampler {
	if every <= 0 || (len(node.pids) == 0 && len(metrics.urls) == 0) {
		return nil
	}
	s := &sampler{every: every, node: node, metrics: metrics, start: time.Now(), quit: make(chan struct{}),
		done: make(chan struct{})}
	go s.run(ctx)
	return s
}

func (s *sampler) run(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	s.take(ctx)
	for {
		select {
		case <-t.C:
			s.take(ctx)
		case <-s.quit:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (s *sampler) take(ctx context.Context) {
	smp := Sample{Sec: time.Since(s.start).Seconds()}
	if len(s.node.pids) > 0 {
		p, err := s.node.read()
		if err != nil {
			s.warn(fmt.Sprintf("node /proc: %v", err))
		}
		smp.RSSKiB, smp.CPUSec = p.RSSKiB, p.CPUSec
	}
	if len(s.metrics.urls) > 0 {
		smp.HeapInuseBytes = s.heap(ctx)
	}
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
}

// heap sums the nodes' heap gauge; nil if any node did not give it.
func (s *sampler) heap(ctx context.Context) *float64 {
	var sum float64
	for _, u := range s.metrics.urls {
		fams, err := s.metrics.get(ctx, u)
		if err != nil {
			s.warn(fmt.Sprintf("%s: %v", u, err))
			return nil
		}
		fam := fams[heapGauge]
		if fam == nil || len(fam.GetMetric()) == 0 {
			s.warn(fmt.Sprintf("%s: no %s", u, heapGauge))
			return nil
		}
		sum += fam.GetMetric()[0].GetGauge().GetValue()
	}
	return &sum
}

// warn keeps each distinct warning once.
func (s *sampler) warn(w string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.warnings {
		if x == w {
			return
		}
	}
	s.warnings = append(s.warnings, w)
}

// stop takes a last sample (the phase's end) and ends the sampling; it returns
// the samples and warnings.
func (s *sampler) stop(ctx context.Context) ([]Sample, []string) {
	if s == nil {
		return nil, nil
	}
	close(s.quit) // a sample being taken is finished first
	<-s.done
	s.take(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples, s.warnings
}

// steadyOf summarizes the samples taken at warmup or later; nil if none.
func steadyOf(samples []Sample, warmup time.Duration) *Steady {
	var rss, heap []float64
	heapAll := true
	for _, s := range samples {
		if s.Sec < warmup.Seconds() {
			continue
		}
		rss = append(rss, float64(s.RSSKiB))
		if s.HeapInuseBytes == nil {
			heapAll = false
		} else {
			heap = append(heap, *s.HeapInuseBytes)
		}
	}
	if len(rss) == 0 {
		return nil
	}
	st := &Steady{WarmupSec: warmup.Seconds(), Samples: len(rss), RSS: spreadOf(rss)}
	if heapAll && len(heap) > 0 {
		h := spreadOf(heap)
		st.Heap = &h
	}
	return st
}

func spreadOf(v []float64) Spread {
	s := Spread{Min: v[0], Max: v[0], Last: v[len(v)-1]}
	var sum float64
	for _, x := range v {
		s.Min, s.Max = min(s.Min, x), max(s.Max, x)
		sum += x
	}
	s.Mean = sum / float64(len(v))
	if s.Mean != 0 {
		s.SpreadPct = 100 * (s.Max - s.Min) / s.Mean
	}
	return s
}
