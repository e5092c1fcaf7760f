package loadgen

import (
	"context"
	"fmt"
	"time"
)

// NodeStats is the nodes' memory and CPU from /proc, summed over their pids, at
// the moments of a run.
type NodeStats struct {
	PIDs       []int      `json:"pids"`
	Start      ProcSample `json:"start"`      // before registering users
	Registered ProcSample `json:"registered"` // users ready, before any WebSocket
	Connected  ProcSample `json:"connected"`  // every connection open and synced
	Busy       ProcSample `json:"busy"`       // the measured phase starts (storm: after the fan-out settled)
	End        ProcSample `json:"end"`        // the measured phase done, connections still open
	// RSSPerConnKiB is (Connected.RSS - Registered.RSS) / connections set up.
	RSSPerConnKiB  float64 `json:"rssPerConnKiB"`
	RegisterCPUSec float64 `json:"registerCpuSec"`
	SetupCPUSec    float64 `json:"setupCpuSec"`
	// TrafficCPUSec is the CPU time of the measured phase (traffic, holding, or
	// the storm's reconnect), and TrafficCPUPercent the same over its wall time
	// (100 = one core).
	TrafficCPUSec     float64 `json:"trafficCpuSec"`
	TrafficCPUPercent float64 `json:"trafficCpuPercent"`
	// CPUPerDeliveredUs and CPUPerSentUs are TrafficCPUSec in µs over the
	// messages delivered to loadgen's clients and sent by them in the measured
	// phase (0 when there were none, as for the sends of a storm's reconnect).
	CPUPerDeliveredUs float64 `json:"cpuPerDeliveredUs"`
	CPUPerSentUs      float64 `json:"cpuPerSentUs"`
	Error             string  `json:"error,omitempty"`
}

// nodeSampler reads the nodes' /proc; with no pids it does nothing.
type nodeSampler struct {
	pids  []int
	stats NodeStats
}

func newNodeSampler(pids []int) *nodeSampler {
	return &nodeSampler{pids: pids, stats: NodeStats{PIDs: pids}}
}

// read sums the nodes' RSS and CPU now.
func (n *nodeSampler) read() (ProcSample, error) {
	sum := ProcSample{At: time.Now()}
	var first error
	for _, pid := range n.pids {
		s, err := ReadProc(pid)
		if err != nil && first == nil {
			first = fmt.Errorf("pid %d: %w", pid, err)
		}
		sum.RSSKiB += s.RSSKiB
		sum.CPUSec += s.CPUSec
	}
	return sum, first
}

func (n *nodeSampler) sample(dst *ProcSample) {
	if len(n.pids) == 0 {
		return
	}
	s, err := n.read()
	if err != nil && n.stats.Error == "" {
		n.stats.Error = err.Error()
	}
	*dst = s
}

// quietShare is the CPU share (of one core, summed over the nodes) under which
// the nodes count as done with the fan-out.
const quietShare = 0.10

// settle waits least, then, with pids, until the nodes use less than quietShare
// of a core over a second (at most 2 minutes more); it returns the time waited.
func (n *nodeSampler) settle(ctx context.Context, least time.Duration) time.Duration {
	start := time.Now()
	if !sleepCtx(ctx, least) || len(n.pids) == 0 {
		return time.Since(start)
	}
	prev, _ := n.read()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		if !sleepCtx(ctx, time.Second) {
			break
		}
		cur, err := n.read()
		if err != nil || cur.CPUSec-prev.CPUSec < quietShare*cur.At.Sub(prev.At).Seconds() {
			break
		}
		prev = cur
	}
	return time.Since(start)
}

// sleepCtx sleeps d, or less if ctx ends; it reports whether it slept it all.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// phaseCounts are what loadgen's clients did in the measured phase.
type phaseCounts struct {
	conns     int     // connections set up
	measured  float64 // wall time, s
	delivered uint64  // messages delivered to them
	sent      uint64  // messages they sent
}

// finish computes the derived figures.
func (n *nodeSampler) finish(pc phaseCounts) *NodeStats {
	if len(n.pids) == 0 {
		return nil
	}
	s := &n.stats
	if pc.conns > 0 {
		s.RSSPerConnKiB = float64(s.Connected.RSSKiB-s.Registered.RSSKiB) / float64(pc.conns)
	}
	s.RegisterCPUSec = s.Registered.CPUSec - s.Start.CPUSec
	s.SetupCPUSec = s.Connected.CPUSec - s.Registered.CPUSec
	s.TrafficCPUSec = s.End.CPUSec - s.Busy.CPUSec
	if pc.measured > 0 {
		s.TrafficCPUPercent = 100 * s.TrafficCPUSec / pc.measured
	}
	s.CPUPerDeliveredUs, s.CPUPerSentUs = perMessageUs(s.TrafficCPUSec, pc.delivered), perMessageUs(s.TrafficCPUSec, pc.sent)
	return s
}

func perMessageUs(cpuSec float64, messages uint64) float64 {
	if messages == 0 {
		return 0
	}
	return 1e6 * cpuSec / float64(messages)
}
