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
	CPUPct float64 `json:"cpuPct"`
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
	if span := used[len(used)-1].At.Sub(used[0].At).Seconds(); span > 0 {
		v.CPUPct = 100 * (used[len(used)-1].CPUSec - used[0].CPUSec) / span
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
	Node     int          `json:"node"`
	Process  int          `json:"process"`
	StartSec float64      `json:"startSec"` // since traffic started
	Samples  [][2]float64 `json:"samples"`  // [seconds since traffic started, RSS MiB]
}

func rssSeries(s memSeries, t0 time.Time) RSSSeries {
	out := RSSSeries{Node: s.Node, Process: s.Process, StartSec: s.Started.Sub(t0).Seconds()}
	for _, m := range s.Samples {
		out.Samples = append(out.Samples, [2]float64{m.At.Sub(t0).Seconds(), float64(m.RSSKiB) / 1024})
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
