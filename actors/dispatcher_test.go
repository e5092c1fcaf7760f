package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Schedule never waits for a busy worker: runs that block do not hold back others,
// and a finished worker takes the next run.
func TestWorkerDispatcherNeverWaits(t *testing.T) {
	d := newWorkerDispatcher(7)
	if d.Throughput() != 7 {
		t.Fatalf("throughput %d", d.Throughput())
	}
	release := make(chan struct{})
	var started atomic.Int32
	var done sync.WaitGroup
	for range 100 {
		done.Add(1)
		d.Schedule(func() { // blocks until released
			defer done.Done()
			started.Add(1)
			<-release
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for started.Load() < 100 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 100 blocking runs started: Schedule waited for busy workers", started.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	done.Wait()

	ran := make(chan struct{})
	d.Schedule(func() { close(ran) })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a run scheduled after the others finished never ran")
	}
}
