package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"
)

// The mailbox wrapper finds an actor's mailbox by its PID: its depth is what
// waits behind the message the actor is handling, and the entry goes with the
// grain's registration.
func TestMailboxDepth(t *testing.T) {
	reg := NewRegistry()
	system := actor.NewActorSystem()
	release, started := make(chan struct{}), make(chan struct{})
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(string); ok && ctx.Message() == "block" {
			close(started)
			<-release
		}
	}, actor.WithMailbox(reg.boxes.producer()))
	pid := system.Root.Spawn(props)
	reg.add(KindUser, "alice", pid)
	g, ok := reg.find(KindUser, "alice")
	require.True(t, ok)
	require.Equal(t, int32(0), g.Mailbox)

	system.Root.Send(pid, "block")
	<-started
	for range 5 {
		system.Root.Send(pid, "wait")
	}
	g, _ = reg.find(KindUser, "alice")
	require.Equal(t, int32(5), g.Mailbox)
	close(release)
	require.Eventually(t, func() bool {
		g, _ := reg.find(KindUser, "alice")
		return g.Mailbox == 0
	}, 5*time.Second, 5*time.Millisecond)

	list, truncated := reg.list("", 10)
	require.False(t, truncated)
	require.Len(t, list, 1)
	reg.remove(KindUser, "alice", pid)
	_, ok = reg.find(KindUser, "alice")
	require.False(t, ok)
	require.Equal(t, -1, reg.boxes.depth(pid.Id), "the mailbox entry goes with the registration")
}
