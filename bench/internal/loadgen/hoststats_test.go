package loadgen

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseCPULine(t *testing.T) {
	s, err := parseCPULine("cpu  100 20 300 4000 50 6 7 800 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	require.NoError(t, err)
	require.Equal(t, hostSample{user: 1.2, system: 3.13, idle: 40.5, steal: 8, ok: true}, s)
	_, err = parseCPULine("intr 1 2 3\n")
	require.Error(t, err)
	_, err = parseCPULine("cpu 1 2 x 4 5 6 7 8\n")
	require.Error(t, err)
}

func TestHostFinish(t *testing.T) {
	h := &hostSampler{pgPID: 7,
		start: hostSample{user: 10, system: 2, idle: 30, steal: 1, postgres: 5, ok: true},
		end:   hostSample{user: 14, system: 3, idle: 33, steal: 3, postgres: 6.5, ok: true}}
	s := h.finish(1000)
	require.Equal(t, &HostStats{UserSec: 4, SystemSec: 1, IdleSec: 3, StealSec: 2, StealPercent: 20,
		PostgresPID: 7, PostgresCPUSec: 1.5, PostgresCPUPerDeliveredUs: 1500}, s)
	require.Nil(t, (&hostSampler{}).finish(1), "nothing sampled, nothing reported")
}

// The process tree's CPU is its own and its children's: a child that burns CPU
// shows in this process's tree and not in its own figure.
func TestTreeCPUCountsChildren(t *testing.T) {
	pp, cpu, ok := parentAndCPU("42 (a b) c)) S 7 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 1 1\n")
	require.True(t, ok)
	require.Equal(t, 7, pp)
	require.InDelta(t, 3.0, cpu, 1e-9)

	child := exec.Command("sh", "-c", "while :; do :; done")
	require.NoError(t, child.Start())
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	var burnt float64
	deadline := time.Now().Add(20 * time.Second)
	for burnt < 0.05 {
		require.True(t, time.Now().Before(deadline), "the child burnt %.2f s of CPU in 20 s", burnt)
		time.Sleep(20 * time.Millisecond)
		s, err := ReadProc(child.Process.Pid)
		require.NoError(t, err)
		burnt = s.CPUSec
	}
	own, err := ReadProc(os.Getpid())
	require.NoError(t, err)
	tree, err := treeCPU(os.Getpid())
	require.NoError(t, err)
	require.GreaterOrEqual(t, tree, own.CPUSec+burnt, "the child's CPU is in the tree's")
}
