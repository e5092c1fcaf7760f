package loadgen

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// WriteJSON writes the result as indented JSON.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// describe is the one-line description of the run.
func (r *Result) describe() string {
	pace := fmt.Sprintf("at %.0f msgs/s", r.Rate)
	if r.Rate == 0 {
		pace = "as fast as the window allows"
	}
	switch r.Scenario {
	case ScenarioIdle:
		return fmt.Sprintf("%d idle connections held for %s", r.Conns, r.Duration)
	case ScenarioGroup:
		return fmt.Sprintf("%d group(s) of %d members, all online, %d sender(s) each, %s for %s",
			r.Groups, r.Members, r.Senders, pace, r.Duration)
	case ScenarioChannel:
		if r.Rate > 0 {
			pace = fmt.Sprintf("at %g posts/s", r.Rate)
		}
		return r.describeChannel(pace)
	case ScenarioStorm:
		return fmt.Sprintf("reconnect storm: %d clients in groups of up to %d (one sender each) miss %d messages each, then reconnect at once and sync",
			r.Conns, r.Members, r.Messages)
	}
	return fmt.Sprintf("%d connections in pairs, 1:1 traffic %s for %s", r.Conns, pace, r.Duration)
}

// Markdown renders the result as a Markdown section with one table.
func (r *Result) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "## loadgen %s: %s\n\n", r.Scenario, r.Started.Format("2006-01-02 15:04:05 MST"))
	auth := "register + login"
	if r.MintedAuth {
		auth = "minted tokens"
	}
	fmt.Fprintf(&b, "%s. %s encoding, %s, %d process(es), %d source address(es) each, nodes %s.\n\n",
		r.describe(), r.Encoding, auth, r.Procs, r.SrcIPs, strings.Join(r.URLs, ", "))
	b.WriteString("| metric | value |\n|---|---|\n")
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(f, a...)) }
	r.setupRows(row)
	switch r.Scenario {
	case ScenarioIdle:
	case ScenarioStorm:
		r.stormRows(row)
	case ScenarioChannel:
		r.channelRows(row)
	default:
		r.trafficRows(row)
	}
	r.rowsRow(row)
	r.errorRows(row)
	r.selfRows(row)
	r.nodeRows(row)
	r.hostRows(row)
	r.metricsSection(&b)
	r.seriesSection(&b)
	if len(r.FirstErrors) > 0 {
		b.WriteString("\nFirst errors:\n\n")
		for _, e := range r.FirstErrors {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}

type rowFunc func(k, f string, a ...any)

func (r *Result) setupRows(row rowFunc) {
	row("connections set up", "%d of %d (setup errors %d, dials retried %d); %d open at the end", r.SetupUp, r.Conns, r.SetupErrors, r.DialRetries, r.ConnsUp)
	row("users ready", "%.1f s (registration, logins or minted tokens, groups)", r.RegisterSec)
	row("connection setup", "%.2f s, **%.0f conns/s** (dial, upgrade, sync answered)", r.SetupSec, r.SetupRate)
	var ph []string
	for _, p := range r.Phases {
		ph = append(ph, fmt.Sprintf("%s %.2f s", p.Phase, p.Sec))
	}
	row("phases", "%s", strings.Join(ph, ", "))
}

func (r *Result) latencyRow(row rowFunc, name string, l Latency) {
	row(name, "p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms (n=%d)", l.P50Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.Count)
}

func (r *Result) trafficRows(row rowFunc) {
	row("sent / acked", "%d / %d", r.Sent, r.Acked)
	row("delivered / owed", "%d / %d (lost %d, duplicates %d)", r.Delivered, r.Expected, r.Lost, r.Duplicates)
	row("rate tokens missed", "%d", r.Missed)
	row("acked msgs/s", "%.0f", r.AckedPerSec)
	row("delivered msgs/s", "**%.0f** (over %.2f s)", r.DeliveredPerSec, r.TrafficSec)
	r.latencyRow(row, "send → sent", r.SentLatency)
	r.latencyRow(row, "send → delivery", r.DeliveryLatency)
	if r.ReadEvery > 0 {
		row("receipts load", "received on every message, read on every %d-th: %d received and %d read written, %d receipt frames back (%d not written: loadgen fell behind)",
			r.ReadEvery, r.AcksOut, r.ReadsOut, r.ReceiptsIn, r.AcksDropped)
	}
	if r.Push != "" {
		where := "online"
		if r.PushOffline {
			where = "offline (every message makes a push)"
		}
		row("push load", "one-way; each recipient has a %s push target and is %s", r.Push, where)
	}
}

func (r *Result) stormRows(row rowFunc) {
	row("posted / acked", "%d / %d (queue entries owed %d)", r.Sent, r.Acked, r.Expected)
	row("fan-out settle wait", "%.1f s", r.SettleSec)
	row("caught up", "%d of %d (not caught up %d)", r.CaughtUp, r.Conns, r.NotCaughtUp)
	if r.NotCaughtUp == 0 {
		row("until all caught up", "**%.2f s** from the first reconnect dial", r.StormSec)
	} else {
		row("until all caught up", "**never**: %d clients still short after %.2f s", r.NotCaughtUp, r.MeasuredSec)
	}
	row("delivered", "%d (lost %d, duplicates %d), %.0f msgs/s", r.Delivered, r.Lost, r.Duplicates, r.DeliveredPerSec)
	r.latencyRow(row, "catch-up from the reconnect's start", r.CatchUpLatency)
	r.latencyRow(row, "catch-up from the client's own dial", r.ReconnectLatency)
}

func (r *Result) errorRows(row rowFunc) {
	var codes []string
	for k, v := range r.ErrorFrames {
		codes = append(codes, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(codes)
	frames := "none"
	if len(codes) > 0 {
		frames = strings.Join(codes, ", ")
	}
	row("error frames", "%s (sends repeated after unavailable, not counted: %d)", frames, r.Resent)
	row("closes / write errors", "%d / %d", r.Closes, r.WriteErrors)
	row("errors in all", "**%d**", r.Errors)
}

func (r *Result) selfRows(row rowFunc) {
	s := r.Loadgen
	perFrame := "no frames received"
	if s.FramesIn > 0 {
		perFrame = fmt.Sprintf("**%.2f µs per frame received** (%d frames)", s.USPerFrame, s.FramesIn)
	}
	row("loadgen's own CPU", "%.2f s in the measured phase (%.0f %% of one core), %s; JSON frames left to the full decoder: %d",
		s.CPUSec, s.CPUPercent, perFrame, s.SlowDecodes)
}

func (r *Result) nodeRows(row rowFunc) {
	n := r.Node
	if n == nil {
		return
	}
	row("node pids", "%v", n.PIDs)
	mib := func(s ProcSample) float64 { return float64(s.RSSKiB) / 1024 }
	row("node RSS", "%.1f MiB at start, %.1f MiB before connecting, %.1f MiB connected, %.1f MiB at the end",
		mib(n.Start), mib(n.Registered), mib(n.Connected), mib(n.End))
	row("node RSS per connection", "**%.2f KiB** (connected − before connecting, over %d connections; meaningful on a fresh node)", n.RSSPerConnKiB, r.SetupUp)
	row("node CPU", "%.2f s getting users ready, %.2f s connecting, %.2f s in the measured phase (%.0f %% of one core)",
		n.RegisterCPUSec, n.SetupCPUSec, n.TrafficCPUSec, n.TrafficCPUPercent)
	if n.CPUPerDeliveredUs > 0 || n.CPUPerSentUs > 0 {
		marker := ""
		if r.Channel != nil {
			marker = "; the end marker's post and deliveries included"
		}
		row("node CPU per message", "**%.1f µs per message delivered**, %.1f µs per message sent (measured phase, all node pids%s)",
			n.CPUPerDeliveredUs, n.CPUPerSentUs, marker)
	}
	if n.Error != "" {
		row("node stats error", "%s", n.Error)
	}
}

func (r *Result) hostRows(row rowFunc) {
	h := r.Host
	if h == nil {
		return
	}
	if h.PostgresPID > 0 {
		row("PostgreSQL CPU", "%.2f s in the measured phase, **%.1f µs per message delivered** (pid %d and its children)",
			h.PostgresCPUSec, h.PostgresCPUPerDeliveredUs, h.PostgresPID)
	}
	row("machine CPU", "user %.2f s, system %.2f s, idle %.2f s, steal **%.2f s (%.1f %%)** in the measured phase, all cores",
		h.UserSec, h.SystemSec, h.IdleSec, h.StealSec, h.StealPercent)
	if h.Error != "" {
		row("machine stats error", "%s", h.Error)
	}
}

// metricsSection renders the nodes' /metrics over the measured phase: the
// histograms (which stage owns the tail) and the counters.
func (r *Result) metricsSection(b *strings.Builder) {
	m := r.Metrics
	if m == nil {
		return
	}
	fmt.Fprintf(b, "\nWhich stage owns the tail: the nodes' /metrics over the measured phase (%s).\n\n", strings.Join(m.URLs, ", "))
	if len(m.Histograms) > 0 {
		b.WriteString("| histogram | labels | count | p50 | p99 |\n|---|---|---:|---:|---:|\n")
		for _, h := range m.Histograms {
			if h.Count == 0 {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %d | %s | %s |\n", h.Family, labelCell(h.Labels), h.Count,
				metricValue(h.Family, h.P50), metricValue(h.Family, h.P99))
		}
		b.WriteString("\n")
	}
	if len(m.Counters) > 0 {
		b.WriteString("| counter | labels | increase |\n|---|---|---:|\n")
		for _, c := range m.Counters {
			if c.Delta == 0 {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %.0f |\n", c.Family, labelCell(c.Labels), c.Delta)
		}
		b.WriteString("\n")
	}
	for _, w := range m.Warnings {
		fmt.Fprintf(b, "- metrics warning: %s\n", w)
	}
}

func labelCell(labels map[string]string) string {
	if len(labels) == 0 {
		return "–"
	}
	return labelString(labels)
}

// metricValue shows a value of a family in its unit: seconds as ms.
func metricValue(family string, v float64) string {
	if strings.HasSuffix(family, "_seconds") {
		return fmt.Sprintf("%.2f ms", 1000*v)
	}
	return fmt.Sprintf("%.4g", v)
}

// maxSeriesRows bounds the sample table: a long run shows every k-th sample.
const maxSeriesRows = 13

// seriesSection renders the samples of the measured phase and the steady state.
func (r *Result) seriesSection(b *strings.Builder) {
	if len(r.Samples) == 0 {
		return
	}
	b.WriteString("\nThe nodes through the measured phase:\n\n| t | RSS | Go heap in use | node CPU since the row before |\n|---:|---:|---:|---:|\n")
	step := (len(r.Samples) + maxSeriesRows - 2) / (maxSeriesRows - 1)
	prev := -1
	for i, s := range r.Samples {
		if i%max(1, step) != 0 && i != len(r.Samples)-1 {
			continue
		}
		heap, cpu := "–", "–"
		if s.HeapInuseBytes != nil {
			heap = fmt.Sprintf("%.1f MiB", *s.HeapInuseBytes/(1<<20))
		}
		if prev >= 0 && s.Sec > r.Samples[prev].Sec && s.CPUSec > 0 {
			cpu = fmt.Sprintf("%.0f %%", 100*(s.CPUSec-r.Samples[prev].CPUSec)/(s.Sec-r.Samples[prev].Sec))
		}
		fmt.Fprintf(b, "| %.0f s | %.1f MiB | %s | %s |\n", s.Sec, float64(s.RSSKiB)/1024, heap, cpu)
		prev = i
	}
	if st := r.Steady; st != nil {
		mib := func(kib float64) float64 { return kib / 1024 }
		fmt.Fprintf(b, "\nFrom %.0f s on (%d samples): RSS min %.1f, max %.1f, last %.1f MiB, **spread %.1f %%** of the mean",
			st.WarmupSec, st.Samples, mib(st.RSS.Min), mib(st.RSS.Max), mib(st.RSS.Last), st.RSS.SpreadPct)
		if h := st.Heap; h != nil {
			fmt.Fprintf(b, "; Go heap min %.1f, max %.1f, last %.1f MiB, spread %.1f %%",
				h.Min/(1<<20), h.Max/(1<<20), h.Last/(1<<20), h.SpreadPct)
		}
		fmt.Fprintf(b, "; lost %d, duplicates %d.\n", r.Lost, r.Duplicates)
	}
	for _, w := range r.SampleWarnings {
		fmt.Fprintf(b, "- sampling warning: %s\n", w)
	}
}
