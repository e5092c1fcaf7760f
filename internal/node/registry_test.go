package node

import (
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// heapAfter is the live heap after f, less the live heap before it.
func heapAfter(f func()) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// churn registers and completes n futures, as requests do under load.
func churn(system *actor.ActorSystem, n int) {
	for range n {
		f := actor.NewFuture(system, time.Minute)
		system.Root.Send(f.PID(), "done")
		if _, err := f.Result(); err != nil {
			panic(err)
		}
	}
}

func TestRegistryResized(t *testing.T) {
	system := actor.NewActorSystem()
	resizeRegistry(system, registryBuckets)
	if n := len(system.ProcessRegistry.LocalPIDs.LocalPIDs); n != registryBuckets {
		t.Fatalf("registry has %d buckets, want %d", n, registryBuckets)
	}
	// What NewActorSystem registered is still there.
	if p, ok := system.ProcessRegistry.Get(actor.NewPID("nonhost", "eventstream")); !ok || p == system.DeadLetter {
		t.Fatal("the event stream's process was lost in the resize")
	}
	// Actors and requests work on the new registry.
	pid := system.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if s, ok := ctx.Message().(string); ok {
			ctx.Respond(s + "!")
		}
	}))
	res, err := system.Root.RequestFuture(pid, "hi", 5*time.Second).Result()
	if err != nil || res != "hi!" {
		t.Fatalf("request on the resized registry: %v, %v", res, err)
	}

	// The registry's memory is paid once, not map by map as ids churn through it:
	// 400k futures touch nearly all of the default's 32,768 maps (+9.00 MiB of live
	// heap measured with 1,024 buckets; +0.56 MiB with registryBuckets).
	const n = 400_000
	grown := heapAfter(func() { churn(system, n) })
	if grown > 2<<20 {
		t.Errorf("the registry grew by %.2f MiB over %d futures; want under 2 MiB", float64(grown)/(1<<20), n)
	}
	runtime.KeepAlive(system)
}
