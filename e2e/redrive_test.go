package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/node"
	"github.com/parleychat/parley/internal/testenv"
)

// A message answered with sent is in every member's queue already: the commit wrote
// it there. A node that dies after the commit, before any push (the fault hook holds
// every live push back, then SIGKILL), loses nothing: after a restart the recipient
// and the sender's other devices sync each message exactly once, in order.
func TestCommittedMessagesSurviveCrashBeforePush(t *testing.T) {
	n := testenv.StartNode(t, testenv.DatabaseURL(t), fastConfig, node.FaultHoldDelivery+"=1")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil) // live
	ac := dial(t, n, alice)
	ar := startReader(ac)
	const count = 10
	for i := range count {
		require.NoError(t, ac.Write(sendFrame(fmt.Sprintf("m%d", i), bob.UserID, "held")))
	}
	ar.waitFor(t, 30*time.Second, "sent", func(r *reader) bool { return len(r.sent) == count })
	time.Sleep(300 * time.Millisecond)
	msgs, _, _, _ := br.snapshot()
	require.Empty(t, msgs, "the fault holds the live pushes back")

	n.Kill()
	n.SetEnv(node.FaultHoldDelivery + "=0")
	n.Restart()

	for _, u := range []string{"bob", "alice"} {
		s := bob
		if u == "alice" {
			s = alice
		}
		c := dial(t, n, s)
		r := startReader(c)
		syncAll(t, c, r)
		msgs, _, _, _ := r.snapshot()
		require.Len(t, msgs, count, "%s: every message once", u)
		require.True(t, sorted(requireStream(t, msgs, 1)))
	}
}
