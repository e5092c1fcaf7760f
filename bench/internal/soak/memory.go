package soak

import (
	"math"
	"slices"
	"time"
)

// Memory: each node process's RSS is a series of its own (a restarted node is a
// new process with an empty heap), and the cluster's is their sum at each round of
// sampling in which every node was up. The check is on the sum: after the
// warm-up, every sample of it must lie within ±FlatTolerance of its mean. A
// process's own RSS moves with its load, which the kills move between nodes (a
// survivor takes a share of the dead node's users and grains, +10-15 % of its
// RSS), so the per-process verdicts are reported but judge nothing.

// FlatTolerance is the largest deviation from the mean, as a fraction, that
// still counts as flat.
const FlatTolerance = 0.10

// minFlatSamples is the fewest samples a verdict is given on (a minute at 10s).
const minFlatSamples = 6

type memSample struct {
	At     time.Time
	RSSKiB int64
	CPUSec float64 // utime + stime since the process started
}

// memSeries is one process's samples.
type memSeries struct {
	Node, Process, PID int // Node 0 = the soak itself
	Started, Ended     time.Time
	Samples            []memSample
}

// MemVerdict summarizes one process's RSS after its warm-up.
type MemVerdict struct {
	Node    int `json:"node"`    // 1-based; 0 = the soak process
	Process int `json:"process"` // the node's 1st, 2nd, … process
	PID     int `json:"pid"`
	// StartSec and EndSec: the process's life, in seconds since traffic started
	// (EndSec: its last sample when it outlived the run).
	StartSec float64 `json:"startSec"`
	EndSec   float64 `json:"endSec"`
	Samples  int     `json:"samples"` // all of them
	Used     int     `json:"used"`    // after the warm-up
	// FromSec is the first sample used, in seconds since traffic started.
	FromSec  float64 `json:"fromSec"`
	FirstMiB float64 `json:"firstMiB"`
	MinMiB   float64 `json:"minMiB"`
	MaxMiB   float64 `json:"maxMiB"`
	LastMiB  float64 `json:"lastMiB"`
	MeanMiB  float64 `json:"meanMiB"`
	// DevPct is the largest distance of a sample from the mean, in % of the mean.
	DevPct float64 `json:"devPct"`
	// SlopePct is the least-squares trend per 10 minutes, in % of the mean.
	SlopePct float64 `json:"slopePctPer10Min"`
	// CPUPct is the process's CPU (user + system) over the samples used, in % of
	// one core.
	// nil when the samples have no CPU (a result re-judged from an older file).
	CPUPct *float64 `json:"cpuPct,omitempty"`
	// Flat is DevPct <= 10; nil when fewer than minFlatSamples were left.
	Flat *bool `json:"flat"`
}

// flatness gives s's verdict: the samples taken at least warmup after t0 (traffic
// start) and at least procWarmup after the process started are used.
func flatness(s memSeries, t0 time.Time, warmup, procWarmup time.Duration) MemVerdict {
	v := MemVerdict{Node: s.Node, Process: s.Process, PID: s.PID, StartSec: s.Started.Sub(t0).Seconds(),
		Samples: len(s.Samples)}
	switch {
	case !s.Ended.IsZero():
		v.EndSec = s.Ended.Sub(t0).Seconds()
	case len(s.Samples) > 0:
		v.EndSec = s.Samples[len(s.Samples)-1].At.Sub(t0).Seconds()
	}
	from := t0.Add(warmup)
	if p := s.Started.Add(procWarmup); p.After(from) {
		from = p
	}
	var used []memSample
	for _, m := range s.Samples {
		if !m.At.Before(from) {
			used = append(used, m)
		}
	}
	v.Used = len(used)
	if len(used) == 0 {
		return v
	}
	mib := func(m memSample) float64 { return float64(m.RSSKiB) / 1024 }
	v.FromSec = used[0].At.Sub(t0).Seconds()
	v.FirstMiB, v.LastMiB = mib(used[0]), mib(used[len(used)-1])
	v.MinMiB, v.MaxMiB = v.FirstMiB, v.FirstMiB
	sum := 0.0
	for _, m := range used {
		x := mib(m)
		sum += x
		v.MinMiB, v.MaxMiB = math.Min(v.MinMiB, x), math.Max(v.MaxMiB, x)
	}
	v.MeanMiB = sum / float64(len(used))
	if v.MeanMiB > 0 {
		v.DevPct = 100 * math.Max(v.MaxMiB-v.MeanMiB, v.MeanMiB-v.MinMiB) / v.MeanMiB
		v.SlopePct = 100 * slopePerSec(used) * 600 / v.MeanMiB
	}
	if span := used[len(used)-1].At.Sub(used[0].At).Seconds(); span > 0 && used[len(used)-1].CPUSec > 0 {
		cpu := 100 * (used[len(used)-1].CPUSec - used[0].CPUSec) / span
		v.CPUPct = &cpu
	}
	if len(used) >= minFlatSamples {
		flat := v.DevPct <= 100*FlatTolerance
		v.Flat = &flat
	}
	return v
}

// slopePerSec is the least-squares slope of RSS (MiB) over time (s).
func slopePerSec(ms []memSample) float64 {
	if len(ms) < 2 {
		return 0
	}
	n := float64(len(ms))
	var sx, sy, sxx, sxy float64
	for _, m := range ms {
		x := m.At.Sub(ms[0].At).Seconds()
		y := float64(m.RSSKiB) / 1024
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

// allFlat tells whether every verdict given is flat, and how many were given.
func allFlat(vs []MemVerdict) (flat bool, judged int) {
	flat = true
	for _, v := range vs {
		if v.Node == 0 || v.Flat == nil {
			continue
		}
		judged++
		flat = flat && *v.Flat
	}
	return flat, judged
}

// RSSSeries is one process's samples as the JSON result keeps them.
type RSSSeries struct {
	Node     int     `json:"node"`
	Process  int     `json:"process"`
	StartSec float64 `json:"startSec"` // since traffic started
	// Samples: [seconds since traffic started, RSS MiB, CPU seconds since the
	// process started]; results written before the CPU was kept have two.
	Samples [][]float64 `json:"samples"`
}

func rssSeries(s memSeries, t0 time.Time) RSSSeries {
	out := RSSSeries{Node: s.Node, Process: s.Process, StartSec: s.Started.Sub(t0).Seconds()}
	for _, m := range s.Samples {
		out.Samples = append(out.Samples, []float64{m.At.Sub(t0).Seconds(), float64(m.RSSKiB) / 1024, m.CPUSec})
	}
	return out
}

// clusterTotal sums series sampled in rounds (every apart) into one series: a
// round's samples lie within every/2 of its first; a round counts only when it
// has a sample of each of the nodes.
func clusterTotal(series []memSeries, nodes int, every time.Duration) memSeries {
	type tagged struct {
		node int
		m    memSample
	}
	var all []tagged
	for _, s := range series {
		for _, m := range s.Samples {
			all = append(all, tagged{s.Node, m})
		}
	}
	slices.SortFunc(all, func(a, b tagged) int { return a.m.At.Compare(b.m.At) })
	total := memSeries{}
	for i := 0; i < len(all); {
		first := all[i].m.At
		seen := map[int]bool{}
		var sum memSample
		for ; i < len(all) && all[i].m.At.Sub(first) < every/2; i++ {
			seen[all[i].node] = true
			sum.RSSKiB += all[i].m.RSSKiB
			sum.CPUSec += all[i].m.CPUSec
		}
		if len(seen) == nodes {
			sum.At = first
			total.Samples = append(total.Samples, sum)
		}
	}
	if len(total.Samples) > 0 {
		total.Started = total.Samples[0].At
	}
	return total
}

// CycleVerdict compares the nodes' summed RSS cycle by cycle: a cycle is the
// time from one kill to the next (5 minutes without kills), its figure the mean of
// its rounds, so that each cycle's sawtooth (a killed process's RSS replaced by a
// fresh one's, which climbs back as its users return) is held against the same
// sawtooth, not against its own low point.
type CycleVerdict struct {
	Cycles   int       `json:"cycles"`
	MeansMiB []float64 `json:"meansMiB"`
	PeaksMiB []float64 `json:"peaksMiB"` // the highest round of each cycle
	DevPct   float64   `json:"devPct"`   // the largest distance of a cycle's mean from their mean, in %
	Flat     *bool     `json:"flat"`     // DevPct <= 10; nil with fewer than 2 cycles
}

// cycles splits total (already past the warm-up) into cycles of length every,
// starting at from; a cycle with fewer than minFlatSamples rounds is left out.
func cycles(total []memSample, from time.Time, every time.Duration) CycleVerdict {
	var v CycleVerdict
	if every <= 0 {
		return v
	}
	byCycle := map[int][]memSample{}
	last := -1
	for _, m := range total {
		if m.At.Before(from) {
			continue
		}
		k := int(m.At.Sub(from) / every)
		byCycle[k] = append(byCycle[k], m)
		last = max(last, k)
	}
	for k := 0; k <= last; k++ {
		ms := byCycle[k]
		if len(ms) < minFlatSamples {
			continue
		}
		sum, peak := 0.0, 0.0
		for _, m := range ms {
			x := float64(m.RSSKiB) / 1024
			sum += x
			peak = math.Max(peak, x)
		}
		v.MeansMiB = append(v.MeansMiB, sum/float64(len(ms)))
		v.PeaksMiB = append(v.PeaksMiB, peak)
	}
	v.Cycles = len(v.MeansMiB)
	if v.Cycles < 2 {
		return v
	}
	mean := 0.0
	for _, x := range v.MeansMiB {
		mean += x
	}
	mean /= float64(v.Cycles)
	for _, x := range v.MeansMiB {
		v.DevPct = math.Max(v.DevPct, 100*math.Abs(x-mean)/mean)
	}
	flat := v.DevPct <= 100*FlatTolerance
	v.Flat = &flat
	return v
}
