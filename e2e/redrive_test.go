package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/node"
	"github.com/parleychat/parley/internal/testenv"
)

// The committed event is the outbox: messages committed by a node that died before
// fanning them out reach the recipient's queue after a restart, exactly once.
func TestFanoutRedrivenAfterCrash(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig, node.FaultHoldFanout+"=1")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac := dial(t, n, alice)
	ar := startReader(ac)
	const count = 10
	for i := range count {
		require.NoError(t, ac.Write(sendFrame(fmt.Sprintf("m%d", i), bob.UserID, "held")))
	}
	ar.waitFor(t, 30*time.Second, "sent", func(r *reader) bool { return len(r.sent) == count })

	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	msgs, _, _, _ := br.snapshot()
	require.Empty(t, msgs, "the fault holds fan-out back")

	n.Kill()
	n.SetEnv(node.FaultHoldFanout + "=0")
	n.Restart()

	bc = dial(t, n, bob)
	br = startReader(bc)
	syncNow(t, bc, br, nil)
	br.waitFor(t, 30*time.Second, "re-driven messages", func(r *reader) bool { return len(r.messages) >= count })
	time.Sleep(300 * time.Millisecond)
	msgs, _, _, _ = br.snapshot()
	require.Len(t, msgs, count)
	require.True(t, sorted(requireStream(t, msgs, 1)))

	// alice's own queue got them too (the sender is a member).
	ac = dial(t, n, alice)
	ar = startReader(ac)
	syncNow(t, ac, ar, nil)
	ar.waitFor(t, 30*time.Second, "alice's copies", func(r *reader) bool { return len(r.messages) >= count })
}
