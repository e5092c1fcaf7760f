//go:build !race

// Proto.Actor's receive-timeout timer writes the actor context from the timer's
// goroutine while the mailbox reads it (actor_context.go: CancelReceiveTimeout in
// receiveTimeoutHandler against InvokeUserMessage), a race of the library's own
// (research/protoactor.md §7) that fires under -race in any test that lets a
// receive timeout expire; `make test` runs this file in its pass without -race.

package actors

import (
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/proto/parleypb"
)

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
