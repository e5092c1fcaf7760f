package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
)

func mustUsers(t *testing.T, s *postgres.Store, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testenv.Name(prefix)
		require.NoError(t, s.CreateUser(context.Background(), persistence.User{ID: ids[i], DisplayName: ids[i], PasswordHash: "x"}))
	}
	return ids
}

// Contacts are added once however often, listed in the order added with whether
// each added the user back, removed idempotently; a contact that is no user is
// ErrNotFound, and a user at its limit gets ErrTooManyContacts, also when adds race.
func TestContacts(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u := mustUsers(t, s, "c", 4)
	a, b, c, d := u[0], u[1], u[2], u[3]

	require.NoError(t, s.AddContact(ctx, a, b, 1, 3))
	require.NoError(t, s.AddContact(ctx, a, b, 2, 3), "adding twice")
	require.NoError(t, s.AddContact(ctx, a, c, 3, 3))
	require.NoError(t, s.AddContact(ctx, b, a, 4, 3)) // b adds a back
	require.ErrorIs(t, s.AddContact(ctx, a, "nobody-"+a, 5, 3), persistence.ErrNotFound)

	list, err := s.Contacts(ctx, a)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, b, list[0].ID)
	require.True(t, list[0].AddedMe, "b added a")
	require.Equal(t, c, list[1].ID)
	require.False(t, list[1].AddedMe, "c did not")
	require.Equal(t, persistence.VisibleToEveryone, list[0].Visibility)

	require.NoError(t, s.AddContact(ctx, a, d, 6, 3))
	e := mustUsers(t, s, "c", 1)[0]
	require.ErrorIs(t, s.AddContact(ctx, a, e, 7, 3), persistence.ErrLimit)
	require.NoError(t, s.AddContact(ctx, a, d, 8, 3), "one already there is not over the limit")

	require.NoError(t, s.RemoveContact(ctx, a, c))
	require.NoError(t, s.RemoveContact(ctx, a, c), "removing twice")
	require.NoError(t, s.AddContact(ctx, a, e, 9, 3), "room again")

	// Racing adds never pass the limit.
	f := mustUsers(t, s, "c", 1)[0]
	many := mustUsers(t, s, "c", 12)
	var wg sync.WaitGroup
	for _, m := range many {
		wg.Go(func() { _ = s.AddContact(ctx, f, m, 1, 5) })
	}
	wg.Wait()
	list, err = s.Contacts(ctx, f)
	require.NoError(t, err)
	require.Len(t, list, 5)
}

// Who sees a user's presence is stored per user, everyone by default; Visibility
// also says whether the user added the viewer.
func TestVisibility(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u := mustUsers(t, s, "v", 2)
	v, added, err := s.Visibility(ctx, u[0], u[1])
	require.NoError(t, err)
	require.Equal(t, persistence.VisibleToEveryone, v)
	require.False(t, added)
	require.NoError(t, s.SetVisibility(ctx, u[0], persistence.VisibleToContacts))
	require.NoError(t, s.AddContact(ctx, u[0], u[1], 1, 0))
	v, added, err = s.Visibility(ctx, u[0], u[1])
	require.NoError(t, err)
	require.Equal(t, persistence.VisibleToContacts, v)
	require.True(t, added)
	require.Error(t, s.SetVisibility(ctx, u[0], "friends"), "not a setting")
	require.ErrorIs(t, s.SetVisibility(ctx, "nobody-"+u[0], persistence.VisibleToNobody), persistence.ErrNotFound)
}

// Who is online is read back through the node leases: a row whose holder's lease
// lapsed counts as offline; a user going offline removes only its own holder's row.
func TestOnlinePeers(t *testing.T) {
	s := mustOpen(t)
	ctx := context.Background()
	u := mustUsers(t, s, "o", 4)
	a, b, c, d := u[0], u[1], u[2], u[3]
	require.NoError(t, s.AddContact(ctx, a, b, 1, 0)) // a watches b
	require.NoError(t, s.AddContact(ctx, c, a, 2, 0)) // c watches a
	require.NoError(t, s.AddContact(ctx, a, d, 3, 0)) // a watches d
	live, err := s.AcquireNodeID(ctx, testenv.Name("live"), -1, time.Minute)
	require.NoError(t, err)
	lapsed, err := s.AcquireNodeID(ctx, testenv.Name("lapsed"), -1, time.Millisecond)
	require.NoError(t, err)
	set := func(user, holder string, online bool) {
		done := make(chan error, 1)
		s.SetOnline(user, holder, online, 5, func(err error) { done <- err })
		require.NoError(t, <-done)
	}
	set(b, live.Holder, true)
	set(c, live.Holder, true)
	set(d, lapsed.Holder, true) // its node died
	time.Sleep(5 * time.Millisecond)
	watchers, contacts, err := s.OnlinePeers(ctx, a)
	require.NoError(t, err)
	require.Equal(t, []string{c}, watchers)
	require.Equal(t, []string{b}, contacts, "d's row is its dead node's")

	set(b, lapsed.Holder, false) // not the holder of b's row
	_, contacts, err = s.OnlinePeers(ctx, a)
	require.NoError(t, err)
	require.Equal(t, []string{b}, contacts)
	set(b, live.Holder, false)
	_, contacts, err = s.OnlinePeers(ctx, a)
	require.NoError(t, err)
	require.Empty(t, contacts)

	// The dead node's rows go; the live node's stay.
	set(b, live.Holder, true)
	require.NoError(t, s.DeleteStaleOnline(ctx))
	n := func(user string) (count int) {
		require.NoError(t, s.QueryRowForTest(ctx, `SELECT count(*) FROM presence_online WHERE user_id = $1`, user).Scan(&count))
		return count
	}
	require.Zero(t, n(d), "the lapsed holder's row")
	require.Equal(t, 1, n(b), "the live holder's row")
}
