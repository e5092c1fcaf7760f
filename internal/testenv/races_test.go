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
	const theirsCalledByUs = `WARNING: DATA RACE
Read at 0x00c00028fe98 by goroutine 2578:
  github.com/asynkron/protoactor-go/cluster/identitylookup/disthash.(*Manager).Get()
      /x/manager.go:75 +0x3c
  github.com/parleychat/parley/actors.(*Connection).attach()
Previous write at 0x00c00028fe98 by goroutine 33:
  github.com/asynkron/protoactor-go/cluster/identitylookup/disthash.(*Manager).onClusterTopology()
==================
`
	const oursAgainstLib = `WARNING: DATA RACE
Write at 0x1 by goroutine 2:
  github.com/parleychat/parley/internal/node.update()
Previous read at 0x1 by goroutine 3:
  github.com/asynkron/protoactor-go/cluster.(*MemberList).Members()
==================
`
	o, th := races("log\n" + theirs + ours + theirs + theirsCalledByUs + oursAgainstLib)
	if o != 2 || th != 3 {
		t.Fatalf("ours %d theirs %d, want 2 and 3", o, th)
	}
}
