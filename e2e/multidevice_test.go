package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
)

// Acceptance 4: bob on two devices gets every message on both; cursors are
// independent; alice's second device sees what alice sent from her first.
func TestMultiDevice(t *testing.T) {
	db := testenv.DatabaseURL(t)
	n := testenv.StartNode(t, db, fastConfig)
	alice1, bob1 := newUser(t, n, "alice"), newUser(t, n, "bob")
	alice2, bob2 := device(t, n, alice1, "a2"), device(t, n, bob1, "b2")
	require.NotEqual(t, bob1.DeviceID, bob2.DeviceID)

	conns := map[string]*reader{}
	a1c, a2c, b1c, b2c := dial(t, n, alice1), dial(t, n, alice2), dial(t, n, bob1), dial(t, n, bob2)
	conns["a1"], conns["a2"], conns["b1"], conns["b2"] = startReader(a1c), startReader(a2c), startReader(b1c), startReader(b2c)
	syncNow(t, a1c, conns["a1"], nil)
	syncNow(t, a2c, conns["a2"], nil)
	syncNow(t, b1c, conns["b1"], nil)
	syncNow(t, b2c, conns["b2"], nil)

	const count = 20
	for i := range count {
		require.NoError(t, a1c.Write(sendFrame(fmt.Sprintf("m%d", i), bob1.UserID, fmt.Sprint("hello ", i))))
	}
	var want []int64
	for _, name := range []string{"a1", "a2", "b1", "b2"} {
		r := conns[name]
		r.waitFor(t, 30*time.Second, name+" gets all", func(r *reader) bool { return len(r.messages) == count })
		msgs, _, errs, _ := r.snapshot()
		require.Empty(t, errs, name)
		ids := requireStream(t, msgs, 1)
		if want == nil {
			want = ids
		}
		require.Equal(t, want, ids, "%s sees the same messages in the same order", name)
	}

	// Cursors: b1 acknowledges everything, b2 only the first 5.
	require.NoError(t, b1c.Write(receivedFrame(count)))
	require.NoError(t, b2c.Write(receivedFrame(5)))
	waitCursor(t, db, bob1.UserID, bob1.DeviceID, count)
	waitCursor(t, db, bob2.UserID, bob2.DeviceID, 5)
	require.NoError(t, b1c.Close())
	require.NoError(t, b2c.Close())

	b2c = dial(t, n, bob2)
	r2 := startReader(b2c)
	s := syncNow(t, b2c, r2, nil)
	require.Equal(t, uint64(count), s.UpTo)
	msgs, _, _, _ := r2.snapshot()
	require.Equal(t, want[5:], requireStream(t, msgs, 6), "b2 resumes after its own cursor")

	b1c = dial(t, n, bob1)
	r1 := startReader(b1c)
	s = syncNow(t, b1c, r1, nil)
	require.Equal(t, uint64(count), s.UpTo)
	msgs, _, _, _ = r1.snapshot()
	require.Empty(t, msgs, "b1 acknowledged everything")
}
