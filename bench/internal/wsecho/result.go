package wsecho

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

// Result is what one Run measured.
type Result struct {
	Started  time.Time `json:"started"`
	Platform string    `json:"platform"`
	Mode     Mode      `json:"mode"`
	Conns    int       `json:"conns"`
	SrcIPs   int       `json:"srcIps"`
	Hold     string    `json:"hold,omitempty"`     // idle
	Window   int       `json:"window,omitempty"`   // echo
	Size     int       `json:"size,omitempty"`     // echo
	Duration string    `json:"duration,omitempty"` // echo
	TimeWait int       `json:"timeWaitAtStart"`    // TCP sockets in TIME_WAIT when the run began
	// LoadAvg is /proc/loadavg's 1-minute figure at the start and the end: other
	// work on the machine shares its CPUs with the run.
	LoadAvg   [2]float64 `json:"loadAvg"`
	ConnsUp   int        `json:"connsUp"`
	SetupSec  float64    `json:"setupSec"`  // dial, upgrade and first echo of every connection
	SetupRate float64    `json:"setupRate"` // connections/s
	// AliveAtEnd (idle) is how many connections echoed a frame after the hold.
	AliveAtEnd int         `json:"aliveAtEnd,omitempty"`
	Server     ServerStats `json:"server"`
	// DriverCPUSec is the CPU time of this process (the clients) during the phase.
	DriverCPUSec float64     `json:"driverCpuSec"`
	Echo         *EchoResult `json:"echo,omitempty"`
	// Errors counts failed connection setups, I/O errors and timeouts.
	Errors      uint64   `json:"errors"`
	FirstErrors []string `json:"firstErrors,omitempty"`
}

// ServerStats is the server process's memory and CPU, from /proc.
type ServerStats struct {
	PID        int                `json:"pid"`
	Before     loadgen.ProcSample `json:"before"`    // after the warm-up connection, none open
	Connected  loadgen.ProcSample `json:"connected"` // every connection up and verified
	End        loadgen.ProcSample `json:"end"`       // after the hold or the traffic
	PeakRSSKiB int64              `json:"peakRssKiB"`
	// RSSPerConnKiB is (Connected.RSS − Before.RSS) / connections up, as loadgen
	// computes it for a node.
	RSSPerConnKiB float64 `json:"rssPerConnKiB"`
	// RSSPerConnEndKiB is (End.RSS − Before.RSS) / connections up.
	RSSPerConnEndKiB float64 `json:"rssPerConnEndKiB"`
	// PhaseCPUPercent is the server's CPU time over the hold or traffic wall time
	// (100 = one core).
	PhaseCPUSec     float64 `json:"phaseCpuSec"`
	PhaseCPUPercent float64 `json:"phaseCpuPercent"`
	Error           string  `json:"error,omitempty"`
}

// EchoResult is the outcome of the echo traffic.
type EchoResult struct {
	Frames       uint64          `json:"frames"` // echoes received within the duration
	FramesPerSec float64         `json:"framesPerSec"`
	MiBPerSec    float64         `json:"mibPerSec"` // echoed payload
	Mismatches   uint64          `json:"mismatches"`
	RTT          loadgen.Latency `json:"rtt"` // every echo, the drain included
	// ServerCPUPerFrameUs is the server's CPU time per echo (RTT.Count): less
	// sensitive than FramesPerSec to other work sharing the CPUs.
	ServerCPUPerFrameUs float64 `json:"serverCpuPerFrameUs"`
}

func newResult(cfg Config) *Result {
	r := &Result{Started: time.Now(), Platform: platform(), Mode: cfg.Mode, Conns: cfg.Conns, SrcIPs: cfg.SrcIPs}
	if cfg.Mode == ModeIdle {
		r.Hold = cfg.Hold.String()
	} else {
		r.Window, r.Size, r.Duration = cfg.Window, cfg.Size, cfg.Duration.String()
	}
	return r
}

func newEchoResult(st echoStats) *EchoResult {
	d := st.Wall
	return &EchoResult{
		Frames:       st.Frames,
		FramesPerSec: float64(st.Frames) / d.Seconds(),
		MiBPerSec:    float64(st.Bytes) / d.Seconds() / (1 << 20),
		Mismatches:   st.Mismatches,
		RTT:          loadgen.Summarize(st.RTT),
	}
}

// finish derives the per-connection and CPU figures; wall is the phase's time.
func (r *Result) finish(wall time.Duration) {
	s := &r.Server
	if r.ConnsUp > 0 {
		s.RSSPerConnKiB = float64(s.Connected.RSSKiB-s.Before.RSSKiB) / float64(r.ConnsUp)
		s.RSSPerConnEndKiB = float64(s.End.RSSKiB-s.Before.RSSKiB) / float64(r.ConnsUp)
	}
	s.PhaseCPUSec = s.End.CPUSec - s.Connected.CPUSec
	s.PhaseCPUPercent = 100 * s.PhaseCPUSec / wall.Seconds()
	if e := r.Echo; e != nil && e.RTT.Count > 0 {
		e.ServerCPUPerFrameUs = 1e6 * s.PhaseCPUSec / float64(e.RTT.Count)
	}
}

// Failed reports whether any connection failed or any echo differed.
func (r *Result) Failed() bool {
	return r.Errors > 0 || r.ConnsUp < r.Conns || (r.Echo != nil && r.Echo.Mismatches > 0) ||
		(r.Mode == ModeIdle && r.AliveAtEnd < r.ConnsUp)
}

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
	fmt.Fprintf(&b, "## wsecho (bare gobwas/ws, goroutine per connection) %s\n\n", r.Started.Format("2006-01-02 15:04:05 MST"))
	if r.Mode == ModeIdle {
		fmt.Fprintf(&b, "%d idle connections held %s, %d source address(es); %s.\n\n", r.Conns, r.Hold, r.SrcIPs, r.Platform)
	} else {
		fmt.Fprintf(&b, "%d connections echoing %d-byte binary frames, window %d, for %s, %d source address(es); %s.\n\n",
			r.Conns, r.Size, r.Window, r.Duration, r.SrcIPs, r.Platform)
	}
	b.WriteString("| metric | value |\n|---|---|\n")
	row := func(k, f string, a ...any) { fmt.Fprintf(&b, "| %s | %s |\n", k, fmt.Sprintf(f, a...)) }
	row("connections up", "%d of %d (%d of their addresses' sockets in TIME_WAIT at start)", r.ConnsUp, r.Conns, r.TimeWait)
	row("connection setup", "%.2f s, %.0f conns/s (dial, upgrade, first echo)", r.SetupSec, r.SetupRate)
	if e := r.Echo; e != nil {
		row("echoed frames/s", "%.0f (%d frames, %.2f MiB/s payload)", e.FramesPerSec, e.Frames, e.MiBPerSec)
		row("round trip", "p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms (n=%d)",
			e.RTT.P50Ms, e.RTT.P99Ms, e.RTT.P999Ms, e.RTT.MaxMs, e.RTT.Count)
		row("echoes differing from what was sent", "%d", e.Mismatches)
	} else {
		row("alive after the hold", "%d of %d", r.AliveAtEnd, r.ConnsUp)
	}
	r.serverRows(row)
	row("errors", "%d", r.Errors)
	if len(r.FirstErrors) > 0 {
		b.WriteString("\nFirst errors:\n\n")
		for _, e := range r.FirstErrors {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}

func (r *Result) serverRows(row func(k, f string, a ...any)) {

	s := r.Server
	mib := func(p loadgen.ProcSample) float64 { return float64(p.RSSKiB) / 1024 }
	row("server pid", "%d", s.PID)
	row("server RSS", "%.1f MiB before, %.1f MiB connected, %.1f MiB at end, %.1f MiB peak",
		mib(s.Before), mib(s.Connected), mib(s.End), float64(s.PeakRSSKiB)/1024)
	row("server RSS per connection", "%.2f KiB connected, %.2f KiB at end ((RSS − before) / conns up)",
		s.RSSPerConnKiB, s.RSSPerConnEndKiB)
	phase := "the hold"
	if r.Mode == ModeEcho {
		phase = "the traffic"
	}
	row("server CPU", "%.2f s during %s (%.0f %% of one core)", s.PhaseCPUSec, phase, s.PhaseCPUPercent)
	if r.Echo != nil {
		row("server CPU per echo", "%.1f µs", r.Echo.ServerCPUPerFrameUs)
	}
	row("driver (clients) CPU", "%.2f s during %s", r.DriverCPUSec, phase)
	row("load average (1 min)", "%.2f at start, %.2f at end", r.LoadAvg[0], r.LoadAvg[1])
	if s.Error != "" {
		row("server stats error", "%s", s.Error)
	}
}
