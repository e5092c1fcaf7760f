package loadgen

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// HostStats is the machine's CPU time over the measured phase, from /proc/stat,
// all cores together, and, with Config.PostgresPID, PostgreSQL's: its postmaster's
// and that of the processes it started (the backends, which outlive the phase). On
// a shared machine the steal time is what other tenants took: a run with much of
// it measured a slower machine.
type HostStats struct {
	UserSec      float64 `json:"userSec"`   // user and nice
	SystemSec    float64 `json:"systemSec"` // system, irq and softirq
	IdleSec      float64 `json:"idleSec"`   // idle and iowait
	StealSec     float64 `json:"stealSec"`
	StealPercent float64 `json:"stealPercent"` // of the machine's time in the phase
	PostgresPID  int     `json:"postgresPid,omitempty"`
	// PostgresCPUSec is the CPU time PostgreSQL's processes spent in the phase,
	// and PostgresCPUPerDeliveredUs the same in µs over the messages delivered.
	PostgresCPUSec            float64 `json:"postgresCpuSec,omitempty"`
	PostgresCPUPerDeliveredUs float64 `json:"postgresCpuPerDeliveredUs,omitempty"`
	Error                     string  `json:"error,omitempty"`
}

// hostSample is the machine's CPU time so far (s), and PostgreSQL's.
type hostSample struct {
	user, system, idle, steal, postgres float64
	ok                                  bool
}

// hostSampler samples the machine at the start and the end of the measured phase.
type hostSampler struct {
	pgPID      int
	start, end hostSample
	err        error
}

func (h *hostSampler) sample(dst *hostSample) {
	s, err := readHost(h.pgPID)
	if err != nil && h.err == nil {
		h.err = err
	}
	*dst = s
}

// finish computes the phase's figures; nil if the machine could not be read.
func (h *hostSampler) finish(delivered uint64) *HostStats {
	if !h.start.ok || !h.end.ok {
		return nil
	}
	a, b := h.start, h.end
	s := &HostStats{UserSec: b.user - a.user, SystemSec: b.system - a.system, IdleSec: b.idle - a.idle,
		StealSec: b.steal - a.steal, PostgresPID: h.pgPID}
	if all := s.UserSec + s.SystemSec + s.IdleSec + s.StealSec; all > 0 {
		s.StealPercent = 100 * s.StealSec / all
	}
	if h.pgPID > 0 {
		s.PostgresCPUSec = b.postgres - a.postgres
		s.PostgresCPUPerDeliveredUs = perMessageUs(s.PostgresCPUSec, delivered)
	}
	if h.err != nil {
		s.Error = h.err.Error()
	}
	return s
}

// readHost reads /proc/stat's cpu line and, with pgPID, sums the CPU time of
// pgPID and its children.
func readHost(pgPID int) (hostSample, error) {
	var s hostSample
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	if s, err = parseCPULine(string(b)); err != nil {
		return s, err
	}
	if pgPID > 0 {
		s.postgres, err = treeCPU(pgPID)
	}
	return s, err
}

// parseCPULine parses the first line of /proc/stat: cpu user nice system idle
// iowait irq softirq steal ..., in clock ticks.
func parseCPULine(stat string) (hostSample, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return hostSample{}, fmt.Errorf("loadgen: /proc/stat starts %q, not with the cpu line", line)
	}
	var t [8]float64
	for i := range t {
		v, err := strconv.ParseUint(f[i+1], 10, 64)
		if err != nil {
			return hostSample{}, fmt.Errorf("loadgen: bad /proc/stat cpu line %q", line)
		}
		t[i] = float64(v) / clockTicks
	}
	return hostSample{user: t[0] + t[1], system: t[2] + t[5] + t[6], idle: t[3] + t[4], steal: t[7], ok: true}, nil
}

// treeCPU is the CPU time of pid and of the processes whose parent it is.
func treeCPU(pid int) (float64, error) {
	own, err := ReadProc(pid)
	if err != nil {
		return 0, fmt.Errorf("loadgen: PostgreSQL's pid %d: %w", pid, err)
	}
	sum := own.CPUSec
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // gone
		}
		if ppid, cpu, ok := parentAndCPU(string(b)); ok && ppid == pid {
			sum += cpu
		}
	}
	return sum, nil
}

// parentAndCPU reads the parent pid and utime+stime (s) from a /proc/PID/stat line.
func parentAndCPU(stat string) (ppid int, cpu float64, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, 0, false
	}
	// f[0] is field 3 (state), f[1] field 4 (ppid); utime and stime are 14 and 15.
	pp, err := strconv.Atoi(f[1])
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err != nil || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return pp, float64(ut+st) / clockTicks, true
}
