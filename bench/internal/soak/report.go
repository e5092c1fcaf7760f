package soak

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// Result is a soak's figures and verdict.
type Result struct {
	Started    time.Time `json:"started"`
	Machine    string    `json:"machine"`
	Nodes      int       `json:"nodes"`
	TLS        bool      `json:"tls"`
	TrafficSec float64   `json:"trafficSec"`
	TotalSec   float64   `json:"totalSec"`
	Load       Load      `json:"load"`
	Events     []Event   `json:"events"`
	Kills      int       `json:"kills"`
	Crashes    int       `json:"crashes"` // node processes that exited by themselves

	Sends  Sends  `json:"sends"`
	Conns  Conns  `json:"conns"`
	Verify Verify `json:"verify"`

	Memory []MemVerdict `json:"memory"`
	Self   MemVerdict   `json:"self"` // the soak process's own RSS
	// Total is the verdict on the nodes' summed RSS over all its rounds after the
	// warm-up (reported), Cycles its cycle-by-cycle verdict (judged).
	Total       MemVerdict   `json:"total"`
	Cycles      CycleVerdict `json:"cycles"`
	MemoryFlat  bool         `json:"memoryFlat"`   // every per-process verdict given is flat (reported, not judged)
	Judged      int          `json:"memoryJudged"` // processes with enough samples after their warm-up
	WarmupSec   float64      `json:"warmupSec"`
	ProcWarmSec float64      `json:"procWarmupSec"`
	RSS         []RSSSeries  `json:"rss"` // every sample, to judge again (soak -judge)
	SampleSec   float64      `json:"sampleSec"`

	SlowEnds     []SlowEnd    `json:"slowEnds"` // how the slow readers' connections ended
	Logs         []LogSummary `json:"logs"`
	StopProblems []string     `json:"stopProblems,omitempty"`
	Examples     []string     `json:"examples,omitempty"` // the first client-side problems
	Pass         bool         `json:"pass"`
	Failures     []string     `json:"failures,omitempty"`
}

// Load is the configured mix.
type Load struct {
	Users          int     `json:"users"`
	Pairs          int     `json:"pairs"`
	DMRate         float64 `json:"dmRatePerUser"`
	Groups         int     `json:"groups"`
	Members        int     `json:"members"`
	GroupRate      float64 `json:"groupRatePerGroup"`
	GroupText      int     `json:"groupTextBytes"`
	Slow           int     `json:"slowReaders"`
	SlowDelayMs    float64 `json:"slowDelayMs"`
	Reconnectors   int     `json:"reconnectors"`
	ReconnectEvery float64 `json:"reconnectEverySec"`
	OfflineMaxSec  float64 `json:"offlineMaxSec"`
	Window         int     `json:"window"`
	OfferedPerSec  float64 `json:"offeredPerSec"` // sends/s offered in all
	KillEverySec   float64 `json:"killEverySec"`
}

// Event is a node event, in seconds since traffic started.
type Event struct {
	AtSec  float64 `json:"atSec"`
	Node   int     `json:"node"`
	What   string  `json:"what"`
	PID    int     `json:"pid,omitempty"`
	Detail string  `json:"detail"`
}

// SlowEnd is a slow reader's connection that ended by itself.
type SlowEnd struct {
	User    string  `json:"user"`
	Quiet   bool    `json:"quiet"` // it wrote nothing during its slow spells
	Node    int     `json:"node"`
	AtSec   float64 `json:"atSec"`   // since traffic started
	Code    int     `json:"code"`    // close code; 0 = none (reset, EOF, node killed)
	LifeSec float64 `json:"lifeSec"` // how long the connection had been open
	ReadMiB float64 `json:"readMiB"` // what the reader had read on it
	Err     string  `json:"err,omitempty"`
}

// Sends are the senders' figures.
type Sends struct {
	Attempted       int64            `json:"attempted"` // distinct client ids
	Acked           int64            `json:"acked"`
	Unacked         int64            `json:"unacked"`
	AckedPerSec     float64          `json:"ackedPerSec"`
	Skipped         int64            `json:"skipped"` // not made: the window was full
	ResendReconnect int64            `json:"resendReconnect"`
	ResendRetry     int64            `json:"resendRetry"`
	ResendTimeout   int64            `json:"resendTimeout"`
	RetryAnswers    map[string]int64 `json:"retryAnswers"` // unavailable, rate_limited
	Rejected        int64            `json:"rejected"`
	RepeatedSent    int64            `json:"repeatedSent"`
	DedupeMismatch  int64            `json:"dedupeMismatch"`
	ConvMismatch    int64            `json:"convMismatch"`
	UnknownSent     int64            `json:"unknownSent"`
	OtherErrors     int64            `json:"otherErrors"`
	Ack             Latency          `json:"ackLatency"`
	Delivered       int64            `json:"delivered"` // message frames read by the sessions
	Delivery        Latency          `json:"deliveryLatency"`
	SeqRepeats      int64            `json:"seqRepeats"`
}

// Latency is a histogram's summary, in ms.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50Ms"`
	P99   float64 `json:"p99Ms"`
	P999  float64 `json:"p999Ms"`
	Max   float64 `json:"maxMs"`
}

// Conns are the connections' figures.
type Conns struct {
	Dials        int64            `json:"dials"`
	DialFailures int64            `json:"dialFailures"`
	Ended        map[string]int64 `json:"ended"`     // by the server or the network, by cause
	DropsOn      []int64          `json:"dropsOn"`   // of them without a close frame, by node
	Planned      int64            `json:"planned"`   // the users' own reconnects
	Rehomes      int64            `json:"rehomes"`   // back to the home node
	SyncAsked    int64            `json:"syncAsked"` // error unavailable without id: sync again
	QueueBehind  int64            `json:"queueBehind"`
}

// Verify is the queues' check.
type Verify struct {
	Users          int      `json:"users"`
	Entries        int      `json:"entries"`
	ExpectedCopies int      `json:"expectedCopies"`
	Verified       int      `json:"verified"`
	Missing        int      `json:"missing"`
	Duplicated     int      `json:"duplicated"`
	UnackedFound   int      `json:"unackedFound"`
	Foreign        int      `json:"foreign"`
	SeqGaps        int      `json:"seqGaps"`
	Reread         int      `json:"reread"`
	Sec            float64  `json:"sec"`
	Problems       []string `json:"problems,omitempty"`
}

func latency(h *loadgen.Histogram) Latency {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Latency{Count: h.Count(), P50: ms(h.Quantile(0.5)), P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)),
		Max: ms(h.Max())}
}

func (r *run) result(started, trafficEnd time.Time, q queueCheck, problems []string, verifySec float64, stopProblems []string) *Result {
	cfg := r.cfg
	res := &Result{Started: started, Machine: machine(), Nodes: cfg.Nodes, TLS: cfg.CertDir != "",
		TrafficSec: trafficEnd.Sub(r.t0).Seconds(), TotalSec: time.Since(started).Seconds(), Load: r.load(),
		WarmupSec: cfg.Warmup.Seconds(), ProcWarmSec: cfg.ProcWarmup.Seconds(), StopProblems: stopProblems}
	r.nodes.mu.Lock()
	for _, e := range r.nodes.events {
		res.Events = append(res.Events, Event{AtSec: e.At.Sub(r.t0).Seconds(), Node: e.Slot + 1, What: e.What, PID: e.PID, Detail: e.Detail})
		switch e.What {
		case "kill":
			res.Kills++
		case "exit":
			res.Crashes++
		}
	}
	r.nodes.mu.Unlock()
	res.Sends = r.sends()
	res.Conns = r.conns()
	_, _, res.Examples = r.ctr.snapshotMaps()
	r.mu.Lock()
	res.SlowEnds = slices.Clone(r.slowEnds)
	r.mu.Unlock()
	res.Verify = Verify{Users: len(r.users), Entries: q.Entries, ExpectedCopies: q.Expected, Verified: q.Verified,
		Missing: q.Missing, Duplicated: q.Duplicated, UnackedFound: q.Unacked, Foreign: q.Foreign, SeqGaps: q.SeqGaps,
		Reread: q.Reread, Sec: verifySec, Problems: problems}
	series := r.nodes.series()
	for _, s := range series {
		res.RSS = append(res.RSS, rssSeries(s, r.t0))
	}
	res.SampleSec = cfg.SampleEvery.Seconds()
	res.memory(series, r.t0)
	res.Self = flatness(trafficOnly([]memSeries{r.nodes.selfSeries()}, trafficEnd)[0], r.t0, cfg.Warmup, 0)
	for i := range cfg.Nodes {
		if s, err := summarizeLog(i+1, r.nodes.logPath(i)); err == nil {
			res.Logs = append(res.Logs, s)
		}
	}
	res.judge()
	return res
}

func (r *run) load() Load {
	cfg := r.cfg
	l := Load{Users: len(r.users), Pairs: cfg.Pairs, DMRate: cfg.DMRate, Groups: cfg.Groups, Members: cfg.Members,
		GroupRate: cfg.GroupRate, GroupText: cfg.GroupText, Slow: cfg.Slow, SlowDelayMs: float64(cfg.SlowDelay.Milliseconds()),
		ReconnectEvery: cfg.ReconnectEvery.Seconds(), OfflineMaxSec: cfg.OfflineMax.Seconds(), Window: cfg.Window,
		OfferedPerSec: 2*float64(cfg.Pairs)*cfg.DMRate + float64(cfg.Groups)*cfg.GroupRate, KillEverySec: cfg.KillEvery.Seconds()}
	for _, u := range r.users {
		if u.reconnects {
			l.Reconnectors++
		}
	}
	return l
}

func (r *run) sends() Sends {
	c := r.ctr
	_, retries, _ := c.snapshotMaps()
	s := Sends{Attempted: c.attempted.Load(), Acked: c.acked.Load(), Skipped: c.skipped.Load(),
		ResendReconnect: c.resendReconnect.Load(), ResendRetry: c.resendRetry.Load(), ResendTimeout: c.resendTimeout.Load(),
		RetryAnswers: retries, Rejected: c.rejected.Load(), RepeatedSent: c.repeatedSent.Load(),
		DedupeMismatch: c.dedupeMismatch.Load(), ConvMismatch: c.convMismatch.Load(), UnknownSent: c.unknownSent.Load(),
		OtherErrors: c.otherErrors.Load(), Ack: latency(r.ack), Delivered: c.delivered.Load(), Delivery: latency(r.delivery),
		SeqRepeats: c.seqRepeats.Load()}
	s.Unacked = s.Attempted - s.Acked
	if sec := r.cfg.Duration.Seconds(); sec > 0 {
		s.AckedPerSec = float64(s.Acked) / sec
	}
	return s
}

func (r *run) conns() Conns {
	c := r.ctr
	closes, _, _ := c.snapshotMaps()
	out := Conns{Dials: c.dials.Load(), DialFailures: c.dialFailures.Load(), Ended: closes, Planned: c.planned.Load(),
		Rehomes: c.rehomes.Load(), SyncAsked: c.syncAsked.Load(), QueueBehind: c.queueBehind.Load()}
	for i := range c.dropsOn {
		out.DropsOn = append(out.DropsOn, c.dropsOn[i].Load())
	}
	return out
}

// judge sets Pass and lists what failed.
func (res *Result) judge() {
	v, s := res.Verify, res.Sends
	fail := func(ok bool, format string, args ...any) {
		if !ok {
			res.Failures = append(res.Failures, fmt.Sprintf(format, args...))
		}
	}
	fail(v.Missing == 0, "%d acknowledged message copies missing from their queues", v.Missing)
	fail(v.Duplicated == 0, "%d duplicated copies in the queues", v.Duplicated)
	fail(v.Foreign == 0, "%d queue entries of no send of this run", v.Foreign)
	fail(v.SeqGaps == 0, "%d seq gaps in the queues", v.SeqGaps)
	fail(s.Unacked == 0, "%d sends never answered sent", s.Unacked)
	fail(s.DedupeMismatch == 0, "%d repeated sends answered with another message id", s.DedupeMismatch)
	fail(s.ConvMismatch+s.UnknownSent == 0, "%d sent frames for the wrong conversation or an unknown id", s.ConvMismatch+s.UnknownSent)
	fail(s.Rejected == 0, "%d sends refused for good", s.Rejected)
	fail(res.Crashes == 0, "%d node processes exited by themselves", res.Crashes)
	fail(len(res.StopProblems) == 0, "nodes did not stop cleanly: %s", strings.Join(res.StopProblems, "; "))
	fail(res.Cycles.Flat != nil, "fewer than two whole cycles after the warm-up to judge the nodes' RSS")
	fail(res.Cycles.Flat == nil || *res.Cycles.Flat, "the nodes' summed RSS not flat from cycle to cycle within ±%.0f %% (%.1f %%)",
		100*FlatTolerance, res.Cycles.DevPct)
	for _, l := range res.Logs {
		fail(len(l.Crashes) == 0, "node %d's log shows a panic, fatal error or data race", l.Node)
	}
	res.Pass = len(res.Failures) == 0
}

func machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s %s/%s, %d CPUs, %s", host, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
}

// WriteJSON writes the result to path.
func (res *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Markdown is the result as the tables of docs/BENCHMARKS.md's Soak section.
func (res *Result) Markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	l, s, v, c := res.Load, res.Sends, res.Verify, res.Conns
	verdict := "**PASS**"
	if !res.Pass {
		verdict = "**FAIL**: " + strings.Join(res.Failures, "; ")
	}
	w("Soak %s: %s traffic on %d nodes (cluster transport %s), a node SIGKILLed every %s (%d kills), %s. %s\n\n",
		res.Started.Format("2006-01-02 15:04"), dur(res.TrafficSec), res.Nodes, map[bool]string{true: "mutual TLS", false: "plain"}[res.TLS],
		dur(l.KillEverySec), res.Kills, res.Machine, verdict)
	w("| load | |\n|---|---|\n")
	w("| users | %d: %d 1:1 pairs at %g msgs/s each; %d groups of %d at %g posts/s each (%d-byte texts); %d slow readers in every group (a frame per %g ms once live); %d users reconnect every ~%gs (away up to %gs) |\n",
		l.Users, l.Pairs, l.DMRate, l.Groups, l.Members, l.GroupRate, l.GroupText, l.Slow, l.SlowDelayMs, l.Reconnectors, l.ReconnectEvery, l.OfflineMaxSec)
	w("| offered | %.0f sends/s, window %d unanswered per user |\n\n", l.OfferedPerSec, l.Window)
	w("| messages | |\n|---|---|\n")
	w("| attempted / acked / unacked | %d / %d / %d (%.0f acked/s; %d not made, window full) |\n", s.Attempted, s.Acked, s.Unacked, s.AckedPerSec, s.Skipped)
	w("| queue copies expected / verified once / missing / duplicated | %d / %d / %d / %d |\n", v.ExpectedCopies, v.Verified, v.Missing, v.Duplicated)
	w("| queue entries read (%d users) / of unacked sends / foreign / seq gaps | %d / %d / %d / %d (read in %.0f s) |\n", v.Users, v.Entries, v.UnackedFound, v.Foreign, v.SeqGaps, v.Sec)
	w("| resends: on reconnect / after unavailable or rate_limited / after %s unanswered | %d / %d / %d (answers: %s) |\n", "15 s", s.ResendReconnect, s.ResendRetry, s.ResendTimeout, kv(s.RetryAnswers))
	w("| repeated sent / with another message id / refused | %d / %d / %d |\n", s.RepeatedSent, s.DedupeMismatch, s.Rejected)
	w("| send→sent | p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.0f ms |\n", s.Ack.P50, s.Ack.P99, s.Ack.P999, s.Ack.Max)
	w("| send→delivery (%d frames, slow readers left out) | p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.0f ms |\n\n", s.Delivery.Count, s.Delivery.P50, s.Delivery.P99, s.Delivery.P999, s.Delivery.Max)
	w("| connections | |\n|---|---|\n")
	w("| dials / failed | %d / %d |\n", c.Dials, c.DialFailures)
	w("| ended by server or network | %s |\n", kv(c.Ended))
	w("| of them without a close frame, by node | %v |\n", c.DropsOn)
	w("| planned reconnects / back to home node / sync asked by server | %d / %d / %d |\n", c.Planned, c.Rehomes, c.SyncAsked)
	w("| slow readers' connections ended | %s |\n\n", slowSummary(res.SlowEnds))
	w("Node events (seconds since traffic started):\n\n")
	for _, e := range res.Events {
		w("- %.0f s: node %d %s (pid %d): %s\n", e.AtSec, e.Node, e.What, e.PID, e.Detail)
	}
	if t := res.Total; t.Used > 0 {
		flat := "too few samples"
		if t.Flat != nil {
			flat = map[bool]string{true: "flat", false: "**not flat**"}[*t.Flat]
		}
		w("\nThe nodes' summed RSS, after the first %s of traffic, %d rounds with every node up: "+
			"first %.1f, min %.1f, max %.1f, last %.1f, mean %.1f MiB; largest deviation %.1f %% of the mean, trend %+.1f %% per 10 min: %s (±%.0f %%).\n",
			dur(res.WarmupSec), t.Used, t.FirstMiB, t.MinMiB, t.MaxMiB, t.LastMiB, t.MeanMiB, t.DevPct, t.SlopePct, flat, 100*FlatTolerance)
	}
	if c := res.Cycles; c.Cycles > 0 {
		flat := "too few cycles"
		if c.Flat != nil {
			flat = map[bool]string{true: "flat", false: "**not flat**"}[*c.Flat]
		}
		w("\nThe judged figure: the nodes' summed RSS cycle by cycle (kill to kill), means %s MiB, peaks %s MiB; "+
			"largest deviation of a cycle's mean %.1f %%: %s (±%.0f %%).\n", mibs(c.MeansMiB), mibs(c.PeaksMiB), c.DevPct, flat, 100*FlatTolerance)
	}
	w("\nRSS per node process, after the first %s of traffic and each process's first %s (reported, not judged: "+
		"a survivor takes on a share of a killed node's load):\n\n", dur(res.WarmupSec), dur(res.ProcWarmSec))
	w("| node | process | pid | life (s) | samples used | first | min | max | last | mean (MiB) | max dev | trend /10 min | CPU | flat ±10 %% |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, m := range append(slices.Clone(res.Memory), res.Self) {
		name := fmt.Sprint(m.Node)
		if m.Node == 0 {
			name = "soak"
		}
		flat := "too short"
		if m.Flat != nil {
			flat = map[bool]string{true: "yes", false: "**no**"}[*m.Flat]
		}
		if m.Used == 0 {
			w("| %s | %d | %d | %.0f–%.0f | 0 of %d | | | | | | | | | %s |\n", name, m.Process, m.PID, m.StartSec, m.EndSec, m.Samples, flat)
			continue
		}
		cpu := "—"
		if m.CPUPct != nil {
			cpu = fmt.Sprintf("%.0f %%", *m.CPUPct)
		}
		w("| %s | %d | %d | %.0f–%.0f | %d of %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f %% | %+.1f %% | %s | %s |\n",
			name, m.Process, m.PID, m.StartSec, m.EndSec, m.Used, m.Samples, m.FirstMiB, m.MinMiB, m.MaxMiB, m.LastMiB, m.MeanMiB,
			m.DevPct, m.SlopePct, cpu, flat)
	}
	w("\nNode logs:\n\n")
	for _, lg := range res.Logs {
		w("- node %d (%d lines; %s)", lg.Node, lg.Lines, kvInt(lg.Levels))
		for _, t := range lg.Top {
			lib := ""
			if t.Lib != "" {
				lib = " [" + t.Lib + "]"
			}
			w("; %s %q%s ×%d", t.Level, t.Msg, lib, t.Count)
		}
		for _, cr := range lg.Crashes {
			w("; CRASH: %s", cr)
		}
		w("\n")
	}
	for _, p := range append(slices.Clone(v.Problems), res.Examples...) {
		w("- problem: %s\n", p)
	}
	return b.String()
}

func dur(sec float64) string {
	return time.Duration(sec * float64(time.Second)).Round(time.Second).String()
}

func kv(m map[string]int64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func kvInt(m map[string]int) string {
	m64 := make(map[string]int64, len(m))
	for k, v := range m {
		m64[k] = int64(v)
	}
	return kv(m64)
}

// slowSummary counts the slow readers' ends by close code, with the median
// connection life and the median read before the end.
func slowSummary(ends []SlowEnd) string {
	if len(ends) == 0 {
		return "none"
	}
	byCode := map[string]int64{}
	var life, read []float64
	for _, e := range ends {
		k := "no close frame"
		if e.Code != 0 {
			k = fmt.Sprintf("close %d", e.Code)
		}
		byCode[k]++
		life, read = append(life, e.LifeSec), append(read, e.ReadMiB)
	}
	return fmt.Sprintf("%s; median life %.0f s, median read %.1f MiB", kv(byCode), median(life), median(read))
}

func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	return s[len(s)/2]
}

// memory gives the RSS verdicts of series (t0: traffic start): each process's and
// the cluster total's.
func (res *Result) memory(series []memSeries, t0 time.Time) {
	series = trafficOnly(series, t0.Add(secs(res.TrafficSec)))
	res.Memory = res.Memory[:0]
	for _, s := range series {
		res.Memory = append(res.Memory, flatness(s, t0, secs(res.WarmupSec), secs(res.ProcWarmSec)))
	}
	res.MemoryFlat, res.Judged = allFlat(res.Memory)
	total := clusterTotal(series, res.Nodes, secs(res.SampleSec))
	res.Total = flatness(total, t0, secs(res.WarmupSec), 0)
	res.Total.Node = -1
	// Cycles run from kill to kill, the first one starting at the first kill after
	// the warm-up; without kills they are 5 minutes long from the warm-up's end.
	every, from := secs(res.Load.KillEverySec), t0.Add(secs(res.WarmupSec))
	if every > 0 {
		from = t0.Add(every * ((secs(res.WarmupSec) + every - 1) / every))
	} else {
		every = 5 * time.Minute
	}
	res.Cycles = cycles(total.Samples, from, every)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// Rejudge judges a result again from its RSS samples, with warm-ups of its own
// when they are not zero (the rest of the result stands as it was).
func Rejudge(res *Result, warmup, procWarmup time.Duration) {
	if warmup > 0 {
		res.WarmupSec = warmup.Seconds()
	}
	if procWarmup > 0 {
		res.ProcWarmSec = procWarmup.Seconds()
	}
	if res.SampleSec == 0 {
		res.SampleSec = 10 // the default, for results written before it was kept
	}
	t0 := time.Unix(0, 0)
	pids := map[[2]int]int{}
	for _, m := range res.Memory {
		pids[[2]int{m.Node, m.Process}] = m.PID
	}
	var series []memSeries
	for _, r := range res.RSS {
		s := memSeries{Node: r.Node, Process: r.Process, PID: pids[[2]int{r.Node, r.Process}], Started: t0.Add(secs(r.StartSec))}
		for _, x := range r.Samples {
			if len(x) < 2 {
				continue
			}
			m := memSample{At: t0.Add(secs(x[0])), RSSKiB: int64(x[1] * 1024)}
			if len(x) > 2 {
				m.CPUSec = x[2]
			}
			s.Samples = append(s.Samples, m)
		}
		series = append(series, s)
	}
	res.memory(series, t0)
	res.Failures, res.Pass = nil, false
	res.judge()
}

// trafficOnly is series without the samples taken after end, when the traffic
// was over: the drain and the verification (every queue read from its start)
// are not the load whose memory is judged.
func trafficOnly(series []memSeries, end time.Time) []memSeries {
	out := make([]memSeries, len(series))
	for i, s := range series {
		out[i] = s
		out[i].Samples = slices.DeleteFunc(slices.Clone(s.Samples), func(m memSample) bool { return m.At.After(end) })
	}
	return out
}

func mibs(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return strings.Join(parts, ", ")
}
