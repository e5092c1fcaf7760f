package soak

import (
	"strings"
	"testing"
	"time"
)

// The soak's verdicts decide whether a 30-minute run passes; these tests hold
// them against queues and RSS series made by hand.

func TestCheckQueue(t *testing.T) {
	a1, a2, a3 := msgKey{"ann", "c1"}, msgKey{"ann", "c2"}, msgKey{"bob", "c1"}
	want := []ackedMsg{{a1, 101}, {a2, 102}, {a3, 103}}
	for _, tc := range []struct {
		name    string
		entries []entry
		unacked map[msgKey]bool
		check   queueCheck // Entries and Expected are filled in
	}{
		{"every message once", []entry{{1, 101, a1, "g"}, {2, 102, a2, "g"}, {3, 103, a3, "g"}}, nil,
			queueCheck{Verified: 3}},
		{"one missing", []entry{{1, 101, a1, "g"}, {2, 103, a3, "g"}}, nil,
			queueCheck{Verified: 2, Missing: 1, MissingIDs: []int64{102}}},
		{"a copy under a second seq", []entry{{1, 101, a1, "g"}, {2, 101, a1, "g"}, {3, 102, a2, "g"}, {4, 103, a3, "g"}}, nil,
			queueCheck{Verified: 2, Duplicated: 1, DuplicatedIDs: []int64{101}}},
		{"one send, two message ids", []entry{{1, 101, a1, "g"}, {2, 999, a1, "g"}, {3, 102, a2, "g"}, {4, 103, a3, "g"}}, nil,
			queueCheck{Verified: 3, Duplicated: 1, DuplicatedIDs: []int64{999}}},
		{"a gap in seq", []entry{{1, 101, a1, "g"}, {3, 102, a2, "g"}, {4, 103, a3, "g"}}, nil,
			queueCheck{Verified: 3, SeqGaps: 1}},
		{"seq not starting at 1", []entry{{2, 101, a1, "g"}, {3, 102, a2, "g"}, {4, 103, a3, "g"}}, nil,
			queueCheck{Verified: 3, SeqGaps: 1}},
		{"a page read twice is no copy", []entry{{1, 101, a1, "g"}, {2, 102, a2, "g"}, {2, 102, a2, "g"}, {3, 103, a3, "g"}}, nil,
			queueCheck{Verified: 3, Reread: 1}},
		{"an unanswered send", []entry{{1, 101, a1, "g"}, {2, 102, a2, "g"}, {3, 103, a3, "g"}, {4, 104, msgKey{"bob", "c9"}, "g"}},
			map[msgKey]bool{{"bob", "c9"}: true}, queueCheck{Verified: 3, Unacked: 1}},
		{"something else", []entry{{1, 101, a1, "g"}, {2, 102, a2, "g"}, {3, 103, a3, "g"}, {4, 104, msgKey{"eve", "x"}, "g"}}, nil,
			queueCheck{Verified: 3, Foreign: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := checkQueue(tc.entries, want, tc.unacked)
			exp := tc.check
			exp.Entries, exp.Expected = len(tc.entries), len(want)
			if !sameCheck(got, exp) {
				t.Fatalf("got %+v\nwant %+v", got, exp)
			}
		})
	}
}

func sameCheck(a, b queueCheck) bool {
	ids := func(x, y []int64) bool {
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return ids(a.MissingIDs, b.MissingIDs) && ids(a.DuplicatedIDs, b.DuplicatedIDs) &&
		a.Entries == b.Entries && a.Expected == b.Expected && a.Verified == b.Verified &&
		a.Missing == b.Missing && a.Duplicated == b.Duplicated && a.Unacked == b.Unacked &&
		a.Foreign == b.Foreign && a.SeqGaps == b.SeqGaps && a.Reread == b.Reread
}

func TestFlatness(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	series := func(start time.Duration, mib ...int64) memSeries {
		s := memSeries{Node: 1, Process: 1, Started: t0.Add(start)}
		for i, m := range mib {
			s.Samples = append(s.Samples, memSample{At: t0.Add(start + time.Duration(i)*10*time.Second), RSSKiB: m << 10})
		}
		return s
	}
	for _, tc := range []struct {
		name string
		s    memSeries
		flat *bool // nil: no verdict
	}{
		// The first 6 samples (a minute) are warm-up and left out.
		{"flat after a warm-up climb", series(0, 10, 30, 60, 90, 95, 99, 100, 102, 98, 101, 100, 99), ptr(true)},
		{"growing 5 % a sample", series(0, 100, 100, 100, 100, 100, 100, 100, 105, 110, 115, 120, 125, 130), ptr(false)},
		{"one spike past 10 %", series(0, 1, 1, 1, 1, 1, 1, 100, 100, 100, 125, 100, 100), ptr(false)},
		{"too short to judge", series(0, 1, 1, 1, 1, 1, 1, 100, 100, 100), nil},
		// A process started late: its own minute of warm-up, not the run's.
		{"a restarted process", series(5*time.Minute, 10, 20, 40, 80, 90, 95, 100, 101, 100, 99, 100, 101), ptr(true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := flatness(tc.s, t0, time.Minute, time.Minute)
			switch {
			case tc.flat == nil && v.Flat != nil:
				t.Fatalf("a verdict (%t) on %d samples", *v.Flat, v.Used)
			case tc.flat != nil && v.Flat == nil:
				t.Fatalf("no verdict on %d samples", v.Used)
			case tc.flat != nil && *v.Flat != *tc.flat:
				t.Fatalf("flat %t, want %t (deviation %.1f %% of %.1f MiB)", *v.Flat, *tc.flat, v.DevPct, v.MeanMiB)
			}
		})
	}
	if flat, judged := allFlat([]MemVerdict{{Node: 1, Flat: ptr(true)}, {Node: 2}, {Node: 3, Flat: ptr(false)}}); flat || judged != 2 {
		t.Fatalf("allFlat: %t of %d judged, want false of 2", flat, judged)
	}
}

func ptr[T any](v T) *T { return &v }

func TestClusterTotal(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	at := func(sec int, ms int) time.Time {
		return t0.Add(time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond)
	}
	series := []memSeries{
		{Node: 1, Samples: []memSample{{At: at(0, 1), RSSKiB: 100}, {At: at(10, 2), RSSKiB: 110}}}, // killed after 10 s
		{Node: 1, Process: 2, Samples: []memSample{{At: at(30, 1), RSSKiB: 50}}},                   // its next process
		{Node: 2, Samples: []memSample{{At: at(0, 3), RSSKiB: 200}, {At: at(10, 4), RSSKiB: 210}, {At: at(20, 3), RSSKiB: 230}, {At: at(30, 5), RSSKiB: 240}}},
	}
	got := clusterTotal(series, 2, 10*time.Second)
	// The round at 20 s had node 1 down: no total.
	want := []int64{300, 320, 290}
	if len(got.Samples) != len(want) {
		t.Fatalf("%d rounds summed, want %d: %+v", len(got.Samples), len(want), got.Samples)
	}
	for i, w := range want {
		if got.Samples[i].RSSKiB != w {
			t.Fatalf("round %d: %d KiB, want %d", i, got.Samples[i].RSSKiB, w)
		}
	}
	if !got.Started.Equal(at(0, 1)) {
		t.Fatalf("started %v", got.Started)
	}
}

// TestJudgeMemory: the nodes' summed RSS, cycle by cycle, is what passes or fails a run.
func TestJudgeMemory(t *testing.T) {
	flat := &Result{Cycles: CycleVerdict{Cycles: 3, Flat: ptr(true)}, Total: MemVerdict{Flat: ptr(false)}}
	if flat.judge(); !flat.Pass {
		t.Fatalf("flat cycles failed: %v", flat.Failures)
	}
	growing := &Result{Cycles: CycleVerdict{Cycles: 3, Flat: ptr(false), DevPct: 14}, Total: MemVerdict{Flat: ptr(true)}}
	if growing.judge(); growing.Pass {
		t.Fatal("growing cycles passed")
	}
	short := &Result{Cycles: CycleVerdict{Cycles: 1}}
	if short.judge(); short.Pass {
		t.Fatal("one cycle passed")
	}
}

// TestCycles: a sawtooth that repeats is flat; one whose every cycle sits higher
// is not, though each cycle's own spread is the same.
func TestCycles(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	saw := func(grow int64) []memSample {
		var ms []memSample
		for c := range int64(4) {
			for i := range int64(30) { // 5 minutes of 10 s rounds: 170 climbing to 199
				ms = append(ms, memSample{At: t0.Add(time.Duration(c*30+i) * 10 * time.Second), RSSKiB: (170 + i + c*grow) << 10})
			}
		}
		return ms
	}
	v := cycles(saw(0), t0, 5*time.Minute)
	if v.Cycles != 4 || v.Flat == nil || !*v.Flat || v.DevPct > 0.01 {
		t.Fatalf("a repeating sawtooth: %+v", v)
	}
	if v.PeaksMiB[0] != 199 {
		t.Fatalf("peak %.1f, want 199", v.PeaksMiB[0])
	}
	v = cycles(saw(20), t0, 5*time.Minute) // +20 MiB a cycle
	if v.Flat == nil || *v.Flat {
		t.Fatalf("a sawtooth rising by 20 MiB a cycle: %+v", v)
	}
	v = cycles(saw(0), t0.Add(19*time.Minute), 5*time.Minute) // the last minute only: one cycle
	if v.Cycles != 1 || v.Flat != nil {
		t.Fatalf("too little left: %+v", v)
	}
}

func TestTrafficOnly(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := memSeries{Node: 1, Samples: []memSample{{At: t0, RSSKiB: 1}, {At: t0.Add(time.Minute), RSSKiB: 2}, {At: t0.Add(2 * time.Minute), RSSKiB: 3}}}
	got := trafficOnly([]memSeries{s}, t0.Add(time.Minute))
	if len(got[0].Samples) != 2 || got[0].Samples[1].RSSKiB != 2 || len(s.Samples) != 3 {
		t.Fatalf("kept %+v (the original: %d samples)", got[0].Samples, len(s.Samples))
	}
}

// A saved result keeps each process's CPU with its RSS, so `soak -judge` reports
// it again; an older result without it says so instead of 0 %.
func TestRejudgeKeepsCPU(t *testing.T) {
	var withCPU, without [][]float64
	for i := range 13 {
		at := float64(i * 10)
		withCPU = append(withCPU, []float64{at, 50, 100 + at/10}) // 1 CPU-s per 10 s: 10 %
		without = append(without, []float64{at, 50})
	}
	res := &Result{Nodes: 2, TrafficSec: 130, WarmupSec: 60, SampleSec: 10,
		RSS: []RSSSeries{{Node: 1, Process: 1, Samples: withCPU}, {Node: 2, Process: 1, Samples: without}}}
	Rejudge(res, 0, 0)
	if len(res.Memory) != 2 {
		t.Fatalf("%d verdicts, want 2", len(res.Memory))
	}
	if c := res.Memory[0].CPUPct; c == nil || *c < 9.9 || *c > 10.1 {
		t.Fatalf("node 1's CPU: %v, want 10 %%", c)
	}
	if c := res.Memory[1].CPUPct; c != nil {
		t.Fatalf("node 2's CPU: %v from samples without it, want none", *c)
	}
	if md := res.Markdown(); !strings.Contains(md, "| 10 % |") || !strings.Contains(md, "| — |") {
		t.Fatalf("the report does not show 10 %% and — for the CPU:\n%s", md)
	}
}
