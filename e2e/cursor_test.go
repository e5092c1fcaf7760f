package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/proto/parleypb"
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

// A sync without after continues after the last seq the connection was sent, so
// that a client following more never gets a page twice (PROTOCOL.md, 2026-12-01);
// on a fresh connection it starts after the device's stored cursor.
func TestSyncWithoutAfterContinues(t *testing.T) {
	db := testenv.DatabaseURL(t)
	n := testenv.StartNode(t, db, fastConfig)
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac := dial(t, n, alice)
	ar := startReader(ac)
	syncNow(t, ac, ar, nil)
	for i := range 5 {
		require.NoError(t, ac.Write(sendFrame(fmt.Sprint("m", i), bob.UserID, "page me")))
	}
	ar.waitFor(t, 10*time.Second, "sent", func(r *reader) bool { return len(r.sent) == 5 })

	bc := dial(t, n, bob)
	br := startReader(bc)
	page := func() *parleypb.Synced {
		t.Helper()
		return syncNowFrame(t, bc, br, &parleypb.Sync{Limit: 2})
	}
	s := page()
	require.Equal(t, uint64(2), s.UpTo)
	require.True(t, s.More)
	s = page()
	require.Equal(t, uint64(4), s.UpTo, "the second page follows the first")
	require.True(t, s.More)
	require.NoError(t, bc.Write(receivedFrame(4)))
	s = page()
	require.Equal(t, uint64(5), s.UpTo)
	require.False(t, s.More)
	msgs, _, _, _ := br.snapshot()
	requireStream(t, msgs, 1)
	require.Len(t, msgs, 5, "every entry once")

	// A new connection of the device starts after its stored cursor (4), once it is
	// stored (at the latest receipts.saveDelay after the received; here when the
	// connection ends).
	require.NoError(t, bc.Close())
	waitCursor(t, db, bob.UserID, bob.DeviceID, 4)
	bc = dial(t, n, bob)
	br = startReader(bc)
	s = syncNowFrame(t, bc, br, &parleypb.Sync{})
	require.Equal(t, uint64(5), s.UpTo)
	msgs, _, _, _ = br.snapshot()
	require.Len(t, msgs, 1, "only what the cursor lacks")
	require.Equal(t, uint64(5), msgs[0].Seq)
}
