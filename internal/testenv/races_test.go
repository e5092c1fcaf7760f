package testenv

import "testing"

func TestRacesCountsOnlyAccessStacks(t *testing.T) {
	const theirs = `WARNING: DATA RACE
Write at 0x1 by goroutine 2:
  github.com/asynkron/protoactor-go/remote.(*BlockList).Block()
Previous read at 0x1 by goroutine 3:
  github.com/asynkron/protoactor-go/cluster.(*MemberList).getTopologyChanges()
Goroutine 2 (running) created at:
  github.com/parleychat/parley/internal/node.startCluster()
==================
`
	const ours = `WARNING: DATA RACE
Write at 0x1 by goroutine 2:
  github.com/parleychat/parley/internal/gateway.(*Socket).assemble()
Previous read at 0x1 by goroutine 3:
  github.com/parleychat/parley/internal/gateway.(*Socket).assemble()
Goroutine 2 (running) created at:
  github.com/parleychat/parley/internal/gateway.New()
==================
`
	o, th := races("log\n" + theirs + ours + theirs)
	if o != 1 || th != 2 {
		t.Fatalf("ours %d theirs %d, want 1 and 2", o, th)
	}
}
