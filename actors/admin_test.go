package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/proto/parleypb"
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

// Looking at a grain does not keep it active: the state request reaches it bare,
// as a NotInfluenceReceiveTimeout message, so its idle timer still fires while it
// is asked again and again.
func TestAdminStateKeepsTheIdleTimer(t *testing.T) {
	system := actor.NewActorSystem()
	idle := make(chan struct{})
	props := actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *actor.Started:
			ctx.SetReceiveTimeout(300 * time.Millisecond)
		case *parleypb.AdminStateRequest:
			ctx.Send(m.ReplyTo, &parleypb.AdminUserState{Status: "online"})
		case *actor.ReceiveTimeout:
			close(idle)
			ctx.CancelReceiveTimeout()
		}
	})
	pid := system.Root.Spawn(props)
	deadline := time.After(3 * time.Second)
	for {
		st, err := askBare(system, pid, time.Second)
		require.NoError(t, err)
		require.Equal(t, "online", st.(*parleypb.AdminUserState).Status)
		select {
		case <-idle:
			return
		case <-deadline:
			t.Fatal("asked every 50 ms, the actor never went idle")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
