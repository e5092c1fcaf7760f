package loadgen

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestNodeStatsFinish(t *testing.T) {
	n := newNodeSampler([]int{11, 12})
	n.stats.Start = ProcSample{RSSKiB: 100_000, CPUSec: 1}
	n.stats.Registered = ProcSample{RSSKiB: 110_000, CPUSec: 3}
	n.stats.Connected = ProcSample{RSSKiB: 130_000, CPUSec: 4}
	n.stats.Busy = ProcSample{RSSKiB: 131_000, CPUSec: 4.5}
	n.stats.End = ProcSample{RSSKiB: 140_000, CPUSec: 10.5}
	s := n.finish(phaseCounts{conns: 2000, measured: 12, delivered: 30_000, sent: 10_000})
	require.InDelta(t, 10.0, s.RSSPerConnKiB, 1e-9, "20,000 KiB over 2,000 connections")
	require.InDelta(t, 2.0, s.RegisterCPUSec, 1e-9)
	require.InDelta(t, 1.0, s.SetupCPUSec, 1e-9)
	require.InDelta(t, 6.0, s.TrafficCPUSec, 1e-9, "busy to end")
	require.InDelta(t, 50.0, s.TrafficCPUPercent, 1e-9, "6 s of CPU in 12 s")
	require.InDelta(t, 200.0, s.CPUPerDeliveredUs, 1e-9, "6 s over 30,000 deliveries")
	require.InDelta(t, 600.0, s.CPUPerSentUs, 1e-9, "6 s over 10,000 sends")

	s = n.finish(phaseCounts{conns: 10, measured: 1})
	require.Zero(t, s.CPUPerDeliveredUs, "no messages: no per-message figure")
	require.Zero(t, s.CPUPerSentUs)
	require.Nil(t, newNodeSampler(nil).finish(phaseCounts{}), "no pids: no node stats")
}
