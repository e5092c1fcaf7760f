package node

import (
	"github.com/asynkron/protoactor-go/actor"
	cmap "github.com/orcaman/concurrent-map"
)

// registryBuckets is how many concurrent maps hold the node's process registry
// (each of 32 locked Go maps): plenty of locks for the goroutines that register
// processes at once on a node.
const registryBuckets = 64

// resizeRegistry replaces Proto.Actor's process registry, 1,024 concurrent maps
// of 32 Go maps each, with one of registryBuckets, keeping what is registered
// already. Every future and actor is registered under a new id, so under load
// the 32,768 maps each get their first group (288 bytes) one by one: 9 MiB of
// heap, 18 MiB of RSS at GOGC=100, that arrived over the first 15 minutes of a
// soak and looked like a leak. With 2,048 maps the registry costs 0.6 MiB from
// the start. Call it right after actor.NewActorSystem, before anything else uses
// the system.
func resizeRegistry(system *actor.ActorSystem, buckets int) {
	sm := &actor.SliceMap{LocalPIDs: make([]cmap.ConcurrentMap, buckets)}
	for i := range sm.LocalPIDs {
		sm.LocalPIDs[i] = cmap.New()
	}
	for _, m := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		for id, p := range m.Items() {
			sm.GetBucket(id).Set(id, p)
		}
	}
	system.ProcessRegistry.LocalPIDs = sm
}
