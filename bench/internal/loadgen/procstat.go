package loadgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SelfCPU is this process's CPU time so far, user and system, from getrusage(2)
// (microsecond resolution, unlike /proc's clock ticks); 0 if it cannot be read.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcSample is a node's memory and CPU at one moment, read from /proc.
type ProcSample struct {
	At     time.Time `json:"at"`
	RSSKiB int64     `json:"rssKiB"`
	CPUSec float64   `json:"cpuSec"` // utime + stime since the process started
}

// ReadProc reads VmRSS from /proc/PID/status and utime+stime from /proc/PID/stat.
func ReadProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	found := false
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				s.RSSKiB, err = strconv.ParseInt(f[0], 10, 64)
				found = err == nil
			}
		}
	}
	if !found {
		return s, fmt.Errorf("loadgen: no VmRSS in /proc/%d/status", pid)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces; fields count from after ")".
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return s, fmt.Errorf("loadgen: bad /proc/%d/stat", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return s, fmt.Errorf("loadgen: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("loadgen: bad utime/stime in /proc/%d/stat", pid)
	}
	s.CPUSec = float64(ut+st) / clockTicks
	return s, nil
}
