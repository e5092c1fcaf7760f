package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// budgetConfig lifts the per-connection frame rate, so that what is measured is
// the per-user budget, and sets each budget small.
func budgetConfig(limits string) string {
	return "auth:\n  bcryptCost: 4\nlimits:\n  frameRate: 100000\n  frameBurst: 100000\n" + limits
}

// Review finding 11: one user's connections are capped (limits.socketsPerUser);
// one more closes with 1008, another user is unaffected, and a closed one frees
// its place.
func TestSocketsPerUser(t *testing.T) {
	n := startNode(t, budgetConfig("  socketsPerUser: 3\n"))
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	var conns []*client.Conn
	for range 3 {
		c := dial(t, n, alice)
		syncNow(t, c, startReader(c), nil)
		conns = append(conns, c)
	}
	extra := dial(t, n, alice)
	r := startReader(extra)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		t.Fatal("a fourth connection of one user stayed open")
	}
	require.True(t, client.IsClose(r.err, wire.ClosePolicy), "closed with %v", r.err)

	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	require.NoError(t, bc.Write(sendFrame("b1", alice.UserID, "still here")))
	br.waitFor(t, 10*time.Second, "bob's send", func(r *reader) bool { return r.sent["b1"] != nil })

	require.NoError(t, conns[0].Close())
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		c, err := client.Dial(testenv.Context(t, 10*time.Second), n.URL, alice.Token, wire.JSON)
		if err != nil {
			return err
		}
		defer c.Drop()
		r := startReader(c)
		if err := c.Write(syncFrame(nil)); err != nil {
			return err
		}
		select {
		case <-r.done:
			return fmt.Errorf("refused again: %v", r.err)
		case <-time.After(time.Second):
		}
		if _, _, _, synced := r.snapshot(); synced == 0 {
			return fmt.Errorf("no synced")
		}
		return nil
	})
}

// A user's sends are one budget however many connections it holds
// (limits.userSends): past it a send is answered rate_limited with its id and is
// not stored; another user's sends go on.
func TestUserSendBudget(t *testing.T) {
	n := startNode(t, budgetConfig("  userSends: {rate: 0.01, burst: 4}\n"))
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	a1, a2 := dial(t, n, alice), dial(t, n, alice)
	r1, r2 := startReader(a1), startReader(a2)
	syncNow(t, a1, r1, nil)
	syncNow(t, a2, r2, nil) // both attached: each holds half the budget
	for i := range 3 {
		require.NoError(t, a1.Write(sendFrame(fmt.Sprint("a1-", i), bob.UserID, "hi")))
		require.NoError(t, a2.Write(sendFrame(fmt.Sprint("a2-", i), bob.UserID, "hi")))
	}
	for _, r := range []*reader{r1, r2} {
		r.waitFor(t, 10*time.Second, "two sent and one refused", func(r *reader) bool {
			return len(r.errors) == 1 && len(r.sent) == 2
		})
	}
	for i, r := range []*reader{r1, r2} {
		_, _, errs, _ := r.snapshot()
		require.Equal(t, "rate_limited", errs[0].Code, errs[0].Message)
		require.Equal(t, fmt.Sprintf("a%d-2", i+1), errs[0].Id)
	}

	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	msgs, _, _, _ := br.snapshot()
	require.Len(t, msgs, 4, "what was refused is not stored")
	for i := range 4 {
		require.NoError(t, bc.Write(sendFrame(fmt.Sprint("b", i), alice.UserID, "hi")))
	}
	br.waitFor(t, 10*time.Second, "bob's four", func(r *reader) bool { return len(r.sent) == 4 })
}

// The entries a user's syncs return are budgeted (limits.userReads): past it the
// reads wait, in order and without a repeat; past maxPaced waiting one is refused
// rate_limited; another user's sync is answered meanwhile.
func TestUserReadBudget(t *testing.T) {
	n := startNode(t, budgetConfig("  userReads: {rate: 20, burst: 20}\n"))
	alice, bob, carol := newUser(t, n, "alice"), newUser(t, n, "bob"), newUser(t, n, "carol")
	ac := dial(t, n, alice)
	ar := startReader(ac)
	for i := range 60 {
		require.NoError(t, ac.Write(sendFrame(fmt.Sprint("m", i), bob.UserID, "hi")))
		require.NoError(t, ac.Write(sendFrame(fmt.Sprint("c", i), carol.UserID, "hi")))
	}
	ar.waitFor(t, 20*time.Second, "sent", func(r *reader) bool { return len(r.sent) == 120 })

	bc := dial(t, n, bob)
	br := startReader(bc)
	start := time.Now()
	// A first page, answered, so that the connection is attached: syncs that come
	// before that are held (at most 4, the oldest dropped), not paced.
	syncNowFrame(t, bc, br, &parleypb.Sync{Limit: 10})
	for range 6 { // the second page spends the burst, four wait, the sixth is refused
		require.NoError(t, bc.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{Limit: 10}}}))
	}
	br.waitFor(t, 10*time.Second, "the seventh refused", func(r *reader) bool { return len(r.errors) == 1 })
	_, _, errs, synced := br.snapshot()
	require.Equal(t, "rate_limited", errs[0].Code, errs[0].Message)
	require.Less(t, synced, 6, "reads past the budget wait")

	cc := dial(t, n, carol) // another user reads at once
	cr := startReader(cc)
	require.NoError(t, cc.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{Limit: 10}}}))
	cr.waitFor(t, 10*time.Second, "carol's sync", func(r *reader) bool { return len(r.synced) == 1 })
	_, _, _, synced = br.snapshot()
	require.Less(t, synced, 6, "carol's sync did not wait for bob's")

	br.waitFor(t, 20*time.Second, "six pages", func(r *reader) bool { return len(r.synced) == 6 })
	require.GreaterOrEqual(t, time.Since(start), time.Second, "40 entries past a burst of 20 at 20/s")
	msgs, _, _, _ := br.snapshot()
	requireStream(t, msgs, 1)
	require.Len(t, msgs, 60, "six pages of ten, none repeated")
}

// Typing notices of one user in one conversation are coalesced
// (limits.typingInterval), across the user's connections.
func TestTypingCoalesced(t *testing.T) {
	n := startNode(t, budgetConfig("  typingInterval: 1s\n"))
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	a1, a2, bc := dial(t, n, alice), dial(t, n, alice), dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	typing := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Typing{Typing: &parleypb.Typing{To: bob.UserID}}}
	for range 5 {
		require.NoError(t, a1.Write(typing))
		require.NoError(t, a2.Write(typing))
	}
	br.waitFor(t, 10*time.Second, "typing", func(r *reader) bool { return len(r.other) >= 1 })
	time.Sleep(300 * time.Millisecond)
	br.mu.Lock()
	require.Len(t, br.other, 1, "ten notices within the interval are one")
	br.mu.Unlock()
	time.Sleep(time.Second)
	require.NoError(t, a2.Write(typing))
	br.waitFor(t, 10*time.Second, "typing after the interval", func(r *reader) bool { return len(r.other) == 2 })
}

// Groups created and conversations started per user are budgeted
// (limits.groupsCreated: REST 429 rate_limited; limits.conversationsStarted: send
// rate_limited); what exists goes on, and other users are unaffected.
func TestCreationBudgets(t *testing.T) {
	n := startNode(t, budgetConfig("  groupsCreated: {rate: 0.001, burst: 2}\n  conversationsStarted: {rate: 0.001, burst: 2}\n"))
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	carol, dave := newUser(t, n, "carol"), newUser(t, n, "dave")
	createGroup(t, n, alice, []client.Session{bob})
	createGroup(t, n, alice, []client.Session{carol})
	err := groupAPI(t, n, alice, http.MethodPost, "/v1/groups", map[string]any{"name": "third", "members": []string{dave.UserID}}, nil)
	require.Equal(t, "rate_limited", apiCode(err))
	var e *client.APIError
	require.ErrorAs(t, err, &e)
	require.Equal(t, http.StatusTooManyRequests, e.Status)
	createGroup(t, n, bob, []client.Session{dave})

	ac := dial(t, n, alice)
	ar := startReader(ac)
	for i, to := range []string{bob.UserID, carol.UserID, dave.UserID} { // one at a time: each spends in turn
		require.NoError(t, ac.Write(sendFrame("to-"+to, to, "hello")))
		ar.waitFor(t, 10*time.Second, "an answer", func(r *reader) bool { return len(r.sent)+len(r.errors) == i+1 })
	}
	ar.waitFor(t, 10*time.Second, "two sent, one refused", func(r *reader) bool { return len(r.sent) == 2 && len(r.errors) == 1 })
	_, _, errs, _ := ar.snapshot()
	require.Equal(t, "rate_limited", errs[0].Code, errs[0].Message)
	require.Equal(t, "to-"+dave.UserID, errs[0].Id)
	require.NoError(t, ac.Write(sendFrame("again", bob.UserID, "a conversation that exists")))
	ar.waitFor(t, 10*time.Second, "sent to bob again", func(r *reader) bool { return r.sent["again"] != nil })

	dc := dial(t, n, dave) // dave's own budget: he may start it, and alice may answer
	dr := startReader(dc)
	require.NoError(t, dc.Write(sendFrame("d1", alice.UserID, "hi alice")))
	dr.waitFor(t, 10*time.Second, "dave's send", func(r *reader) bool { return r.sent["d1"] != nil })
	require.NoError(t, ac.Write(sendFrame("reply", dave.UserID, "hi dave")))
	ar.waitFor(t, 10*time.Second, "alice's reply", func(r *reader) bool { return r.sent["reply"] != nil })
}
