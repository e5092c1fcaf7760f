package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A received or a sync past the end of the queue must not make the connection skip
// live messages that come later.
func TestPositionsPastTheEndStayLive(t *testing.T) {
	n := startNode(t, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac, bc := dial(t, n, alice), dial(t, n, bob)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)

	s := syncNow(t, bc, br, ptr(uint64(1000)))
	require.Equal(t, uint64(0), s.UpTo, "synced names the real end")
	require.NoError(t, bc.Write(receivedFrame(1000)))

	require.NoError(t, ac.Write(sendFrame("m1", bob.UserID, "after the bogus positions")))
	br.waitFor(t, 10*time.Second, "live message", func(r *reader) bool { return len(r.messages) == 1 })
	msgs, _, _, _ := br.snapshot()
	require.Equal(t, uint64(1), msgs[0].Seq)

	// The bogus received did not move the stored cursor: a new connection of the
	// device syncs from its real cursor and gets the message.
	require.NoError(t, bc.Close())
	bc = dial(t, n, bob)
	br = startReader(bc)
	syncNow(t, bc, br, nil)
	msgs, _, _, _ = br.snapshot()
	require.Len(t, msgs, 1)
}
