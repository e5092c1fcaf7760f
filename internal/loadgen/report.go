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

// Markdown renders the result as a Markdown section with one table.
func (r *Result) Markdown() string {
	var b strings.Builder
	mode := fmt.Sprintf("1:1 traffic at %.0f msgs/s", r.Rate)
	if r.Rate == 0 {
		mode = "1:1 traffic as fast as possible"
	}
	if r.Idle {
		mode = "idle connections"
	}
	fmt.Fprintf(&b, "## loadgen %s\n\n", r.Started.Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(&b, "%d connections (%s encoding), %s for %s, %d process(es), %d source address(es), nodes %s.\n\n",
		r.Conns, r.Encoding, mode, r.Duration, r.Procs, r.SrcIPs, strings.Join(r.URLs, ", "))
	b.WriteString("| metric | value |\n|---|---|\n")
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(f, a...)) }
	row("connections up", "%d of %d (setup errors %d)", r.ConnsUp, r.Conns, r.SetupErrors)
	row("register + login", "%.1f s", r.RegisterSec)
	row("connection setup", "%.2f s, %.0f conns/s (dial, upgrade, sync)", r.SetupSec, r.SetupRate)
	if !r.Idle {
		row("sent / acked / delivered", "%d / %d / %d", r.Sent, r.Acked, r.Delivered)
		row("duplicates", "%d", r.Duplicates)
		row("rate tokens missed", "%d", r.Missed)
		row("acked msgs/s", "%.0f", r.AckedPerSec)
		row("delivered msgs/s", "%.0f (over %.2f s)", r.DeliveredPerSec, r.TrafficSec)
		lat := func(name string, l Latency) {
			row(name, "p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms (n=%d)", l.P50Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.Count)
		}
		lat("send → sent", r.SentLatency)
		lat("send → delivery", r.DeliveryLatency)
	}
	var codes []string
	for k, v := range r.ErrorFrames {
		codes = append(codes, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(codes)
	errs := "none"
	if len(codes) > 0 {
		errs = strings.Join(codes, ", ")
	}
	row("error frames", "%s", errs)
	row("closes / write errors", "%d / %d", r.Closes, r.WriteErrors)
	if n := r.Node; n != nil {
		row("node pid", "%d", n.PID)
		mib := func(s ProcSample) float64 { return float64(s.RSSKiB) / 1024 }
		row("node RSS", "%.1f MiB at start, %.1f MiB after logins, %.1f MiB connected, %.1f MiB at end",
			mib(n.Start), mib(n.Registered), mib(n.Connected), mib(n.End))
		row("node RSS per connection", "%.2f KiB (connected − after logins; meaningful on a fresh node)", n.RSSPerConnKiB)
		row("node CPU", "%.2f s registering, %.2f s connecting, %.2f s during traffic (%.0f %% of one core)",
			n.RegisterCPUSec, n.SetupCPUSec, n.TrafficCPUSec, n.TrafficCPUPercent)
		if n.Error != "" {
			row("node stats error", "%s", n.Error)
		}
	}
	if len(r.FirstErrors) > 0 {
		b.WriteString("\nFirst errors:\n\n")
		for _, e := range r.FirstErrors {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}
