package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/persistence/postgres"
	"github.com/parleychat/parley/proto/parleypb"
)

type userBody struct {
	User struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		LastSeen int64  `json:"lastSeen"`
	} `json:"user"`
}

// Issue 11, acceptance 2: a device that stops sending and reading without closing
// (no close frame, no FIN) is closed with 1001 after presence.deadAfter, and bob
// turns offline with a lastSeen of when his device went quiet, not of when the
// node noticed.
func TestDeadSocketGoesOffline(t *testing.T) {
	const deadAfter = 800 * time.Millisecond
	n := startNode(t, fastConfig+"presence:\n  deadAfter: 800ms\n")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")

	bc := dial(t, n, bob)
	br := startReader(bc)
	quiet := time.Now()
	syncNow(t, bc, br, nil) // bob's last frame, written after quiet
	answered := time.Now()

	var st userBody
	require.NoError(t, groupAPI(t, n, alice, http.MethodGet, "/v1/users/"+bob.UserID, nil, &st))
	require.Equal(t, "online", st.User.Status)

	select {
	case <-br.done:
	case <-time.After(10 * deadAfter):
		t.Fatal("a silent socket stayed open")
	}
	closed := time.Now()
	require.True(t, client.IsClose(br.err, wire.CloseGoingAway), "closed with %v", br.err)
	require.GreaterOrEqual(t, closed.Sub(quiet), deadAfter, "closed before deadAfter")
	require.Less(t, quiet, answered)

	deadline := time.Now().Add(10 * time.Second)
	for {
		require.NoError(t, groupAPI(t, n, alice, http.MethodGet, "/v1/users/"+bob.UserID, nil, &st))
		if st.User.Status == "offline" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, "offline", st.User.Status)
	seen := time.UnixMilli(st.User.LastSeen)
	require.WithinDuration(t, quiet, seen, 300*time.Millisecond, "lastSeen is when bob went quiet")
	require.Less(t, seen, closed.Add(-deadAfter/2), "lastSeen is not when the sweep noticed")
}

type contactsBody struct {
	Contacts []struct {
		ID       string `json:"id"`
		Status   string `json:"status"`
		LastSeen *int64 `json:"lastSeen"`
	} `json:"contacts"`
}

// Issue 11, contacts and acceptance 4 (REST): PUT/DELETE /v1/contacts/{id} are
// idempotent, a user that does not exist is 404 and oneself 400, limits.maxContacts
// caps them; GET /v1/contacts gives each contact's status; a user's presence setting
// hides its status and lastSeen from who it should, in GET /v1/contacts and in
// GET /v1/users/{id}.
func TestContactsAndPrivacy(t *testing.T) {
	n := startNode(t, fastConfig+"  maxContacts: 2\n")
	alice, bob, carol, dave := newUser(t, n, "alice"), newUser(t, n, "bob"), newUser(t, n, "carol"), newUser(t, n, "dave")
	api := func(s client.Session, method, path string, body, out any) error {
		return groupAPI(t, n, s, method, path, body, out)
	}
	status := func(err error) int {
		var e *client.APIError
		if errors.As(err, &e) {
			return e.Status
		}
		require.NoError(t, err)
		return http.StatusOK
	}
	require.NoError(t, api(alice, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
	require.NoError(t, api(alice, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil), "twice")
	require.NoError(t, api(carol, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
	require.Equal(t, http.StatusNotFound, status(api(alice, http.MethodPut, "/v1/contacts/no"+bob.UserID, nil, nil)))
	require.Equal(t, http.StatusBadRequest, status(api(alice, http.MethodPut, "/v1/contacts/"+alice.UserID, nil, nil)))
	require.NoError(t, api(alice, http.MethodPut, "/v1/contacts/"+carol.UserID, nil, nil))
	require.Equal(t, http.StatusBadRequest, status(api(alice, http.MethodPut, "/v1/contacts/"+dave.UserID, nil, nil)),
		"past limits.maxContacts")

	bc := dial(t, n, bob)
	syncNow(t, bc, startReader(bc), nil)
	seen := func(viewer client.Session) (contact, user string, lastSeen bool) {
		t.Helper()
		var cs contactsBody
		require.NoError(t, api(viewer, http.MethodGet, "/v1/contacts", nil, &cs))
		for _, c := range cs.Contacts {
			if c.ID == bob.UserID {
				contact = c.Status
				lastSeen = c.LastSeen != nil
			}
		}
		var u userBody
		require.NoError(t, api(viewer, http.MethodGet, "/v1/users/"+bob.UserID, nil, &u))
		return contact, u.User.Status, lastSeen
	}
	c, u, ls := seen(alice)
	require.Equal(t, []any{"online", "online", true}, []any{c, u, ls}, "everyone (the default)")

	var st struct {
		Settings struct {
			Presence string `json:"presence"`
		} `json:"settings"`
	}
	require.NoError(t, api(bob, http.MethodPut, "/v1/me/settings", map[string]string{"presence": "contacts"}, &st))
	require.Equal(t, "contacts", st.Settings.Presence)
	c, u, ls = seen(alice)
	require.Equal(t, []any{"offline", "offline", false}, []any{c, u, ls}, "contacts: bob has not added alice")
	require.NoError(t, api(bob, http.MethodPut, "/v1/contacts/"+alice.UserID, nil, nil))
	c, u, ls = seen(alice)
	require.Equal(t, []any{"online", "online", true}, []any{c, u, ls}, "contacts: bob added alice")
	c, u, ls = seen(carol)
	require.Equal(t, []any{"offline", "offline", false}, []any{c, u, ls}, "contacts: carol, not added by bob")

	require.NoError(t, api(bob, http.MethodPut, "/v1/me/settings", map[string]string{"presence": "nobody"}, nil))
	c, u, ls = seen(alice)
	require.Equal(t, []any{"offline", "offline", false}, []any{c, u, ls}, "nobody")
	require.NoError(t, api(bob, http.MethodGet, "/v1/me/settings", nil, &st))
	require.Equal(t, "nobody", st.Settings.Presence)
	var self userBody
	require.NoError(t, api(bob, http.MethodGet, "/v1/users/"+bob.UserID, nil, &self))
	require.Equal(t, "online", self.User.Status, "a user sees itself")
	require.Equal(t, http.StatusBadRequest, status(api(bob, http.MethodPut, "/v1/me/settings", map[string]string{"presence": "friends"}, nil)))

	require.NoError(t, api(alice, http.MethodDelete, "/v1/contacts/"+bob.UserID, nil, nil))
	require.NoError(t, api(alice, http.MethodDelete, "/v1/contacts/"+bob.UserID, nil, nil), "twice")
	var cs contactsBody
	require.NoError(t, api(alice, http.MethodGet, "/v1/contacts", nil, &cs))
	require.Len(t, cs.Contacts, 1)
	require.Equal(t, carol.UserID, cs.Contacts[0].ID)
	require.NoError(t, api(alice, http.MethodPut, "/v1/contacts/"+dave.UserID, nil, nil), "room again")
}

// presences is what a reader got as presence frames, in order.
func (r *reader) presences() []*parleypb.Presence {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.presencesLocked()
}

func (r *reader) presencesLocked() []*parleypb.Presence {
	var out []*parleypb.Presence
	for _, f := range r.other {
		if p := f.GetPresence(); p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Issue 11, acceptance 1: alice watches bob. Bob connects: alice sees online; bob
// says away: away; bob's last device goes: offline, with a lastSeen within a second
// of it, after presence.grace; a reconnect within the grace shows alice nothing,
// nor does closing one of two devices. Each change reaches both of alice's devices.
func TestPresenceReachesWatchers(t *testing.T) {
	const grace = 400 * time.Millisecond
	n := startNode(t, fastConfig+"presence:\n  grace: 400ms\n")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	require.NoError(t, groupAPI(t, n, alice, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
	var readers []*reader
	for _, s := range []client.Session{alice, device(t, n, alice, "")} {
		c := dial(t, n, s)
		r := startReader(c)
		syncNow(t, c, r, nil)
		readers = append(readers, r)
	}
	// want waits until both of alice's devices have got the statuses, in order, and no more.
	want := func(what string, statuses ...string) []*parleypb.Presence {
		t.Helper()
		var got []*parleypb.Presence
		for _, r := range readers {
			r.waitFor(t, 10*time.Second, what, func(r *reader) bool { return len(r.presencesLocked()) >= len(statuses) })
			got = r.presences()
			var have []string
			for _, p := range got {
				require.Equal(t, bob.UserID, p.User)
				have = append(have, p.Status)
			}
			require.Equal(t, statuses, have, what)
		}
		return got
	}

	phone := dial(t, n, bob)
	pr := startReader(phone)
	syncNow(t, phone, pr, nil)
	want("bob connects", "online")

	require.NoError(t, phone.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Presence{Presence: &parleypb.SetPresence{Status: "away"}}}))
	want("bob away", "online", "away")
	require.NoError(t, phone.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Presence{Presence: &parleypb.SetPresence{Status: "online"}}}))
	want("bob back", "online", "away", "online")

	laptop := dial(t, n, device(t, n, bob, ""))
	syncNow(t, laptop, startReader(laptop), nil)
	require.NoError(t, laptop.Close()) // one of two devices goes
	time.Sleep(2 * grace)
	want("one device of two closed", "online", "away", "online")

	require.NoError(t, phone.Close()) // bob's last device, then back within the grace
	time.Sleep(grace / 4)
	again := dial(t, n, bob)
	syncNow(t, again, startReader(again), nil)
	time.Sleep(2 * grace)
	want("reconnect within the grace", "online", "away", "online")

	require.NoError(t, again.Close())
	gone := time.Now()
	got := want("bob's last device goes", "online", "away", "online", "offline")
	seen := time.UnixMilli(got[3].LastSeen)
	require.WithinDuration(t, gone, seen, time.Second, "lastSeen is when bob's last device went")
	var st userBody
	require.NoError(t, groupAPI(t, n, alice, http.MethodGet, "/v1/users/"+bob.UserID, nil, &st))
	require.Equal(t, "offline", st.User.Status)
}

// Issue 11, acceptance 3: bob is the contact of 1,000 users, 10 of them online. Bob
// coming online sends exactly 10 presence frames (counted at the clients, and at
// the node), activates no offline watcher's grain (no message to it), and writes a
// handful of rows, not one per watcher.
func TestPresenceFansOutToOnlineWatchersOnly(t *testing.T) {
	const offline, online = 990, 10
	db := testenv.DatabaseURL(t)
	n := testenv.StartNode(t, db, fastConfig)
	bob := newUser(t, n, "bob")
	ctx := context.Background()
	store, err := postgres.Open(ctx, db, postgres.Options{}) // to make the offline watchers quickly
	require.NoError(t, err)
	defer store.Close()
	for range offline {
		w := testenv.Name("w")
		require.NoError(t, store.CreateUser(ctx, persistence.User{ID: w, DisplayName: w, PasswordHash: "x"}))
		require.NoError(t, store.AddContact(ctx, w, bob.UserID, 1, 0))
	}
	var readers []*reader
	for range online {
		w := newUser(t, n, "w")
		require.NoError(t, groupAPI(t, n, w, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
		c := dial(t, n, w)
		r := startReader(c)
		syncNow(t, c, r, nil)
		readers = append(readers, r)
	}
	time.Sleep(300 * time.Millisecond) // the watchers' own online rows are committed
	rows := func(f map[string]*dto.MetricFamily) float64 {
		var sum float64
		for _, m := range f["parley_commit_rows"].GetMetric() {
			sum += m.GetHistogram().GetSampleSum()
		}
		return sum
	}
	before := scrape(t, n)

	bc := dial(t, n, bob)
	syncNow(t, bc, startReader(bc), nil)
	for _, r := range readers {
		r.waitFor(t, 10*time.Second, "bob online", func(r *reader) bool { return len(r.presencesLocked()) > 0 })
	}
	time.Sleep(300 * time.Millisecond) // any frame more would arrive by now
	total := 0
	for _, r := range readers {
		ps := r.presences()
		require.Len(t, ps, 1)
		require.Equal(t, "online", ps[0].Status)
		total += len(ps)
	}
	require.Equal(t, online, total)
	after := scrape(t, n)
	require.Equal(t, float64(online), value(after, "parley_frames_out_total", "type", "presence")-
		value(before, "parley_frames_out_total", "type", "presence"), "presence frames the node wrote")
	grains := value(after, "parley_grains_active", "kind", "user") - value(before, "parley_grains_active", "kind", "user")
	require.LessOrEqual(t, grains, float64(1), "user grains activated: bob's at most, no offline watcher's")
	written := rows(after) - rows(before)
	require.Less(t, written, float64(20), "rows written when bob came online (not one per watcher)")
	t.Logf("bob online: %d presence frames, %.0f rows written", total, written)
}

// Issue 11, acceptance 4 (frames): a watcher that bob's setting excludes gets no
// presence frame from him; a change of setting that hides bob from a watcher tells
// it offline without lastSeen, and one that shows him again tells his status.
func TestPresencePrivacyInFrames(t *testing.T) {
	n := startNode(t, fastConfig+"presence:\n  grace: 200ms\n")
	alice, carol, bob := newUser(t, n, "alice"), newUser(t, n, "carol"), newUser(t, n, "bob")
	for _, w := range []client.Session{alice, carol} {
		require.NoError(t, groupAPI(t, n, w, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
	}
	require.NoError(t, groupAPI(t, n, bob, http.MethodPut, "/v1/contacts/"+alice.UserID, nil, nil))
	require.NoError(t, groupAPI(t, n, bob, http.MethodPut, "/v1/me/settings", map[string]string{"presence": "contacts"}, nil))
	watch := func(s client.Session) *reader {
		c := dial(t, n, s)
		r := startReader(c)
		syncNow(t, c, r, nil)
		return r
	}
	ar, cr := watch(alice), watch(carol)
	statuses := func(r *reader) []string {
		var out []string
		for _, p := range r.presences() {
			out = append(out, p.Status)
		}
		return out
	}

	bc := dial(t, n, bob)
	syncNow(t, bc, startReader(bc), nil)
	ar.waitFor(t, 10*time.Second, "alice sees bob", func(r *reader) bool { return len(r.presencesLocked()) == 1 })
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, []string{"online"}, statuses(ar), "bob added alice")
	require.Empty(t, statuses(cr), "contacts: carol is not bob's contact")

	require.NoError(t, groupAPI(t, n, bob, http.MethodPut, "/v1/me/settings", map[string]string{"presence": "nobody"}, nil))
	ar.waitFor(t, 10*time.Second, "hidden from alice", func(r *reader) bool { return len(r.presencesLocked()) == 2 })
	hidden := ar.presences()[1]
	require.Equal(t, "offline", hidden.Status)
	require.Zero(t, hidden.LastSeen, "no lastSeen when hidden")
	require.NoError(t, bc.Close())
	time.Sleep(600 * time.Millisecond) // past the grace
	require.Equal(t, []string{"online", "offline"}, statuses(ar), "nobody: bob going offline shows nothing more")
	require.Empty(t, statuses(cr))

	bc = dial(t, n, bob)
	syncNow(t, bc, startReader(bc), nil)
	require.NoError(t, groupAPI(t, n, bob, http.MethodPut, "/v1/me/settings", map[string]string{"presence": "everyone"}, nil))
	cr.waitFor(t, 10*time.Second, "carol sees bob", func(r *reader) bool { return len(r.presencesLocked()) == 1 })
	ar.waitFor(t, 10*time.Second, "alice sees bob", func(r *reader) bool { return len(r.presencesLocked()) == 3 })
	require.Equal(t, []string{"online"}, statuses(cr))
	require.Equal(t, []string{"online", "offline", "online"}, statuses(ar))
}

// Presence crosses nodes: on three nodes, watchers connected to each see bob,
// connected to another, come online and go offline, each once.
func TestPresenceAcrossNodes(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig+"presence:\n  grace: 200ms\n", 3, 3)
	waitMembers(t, c, 3)
	bob := newUser(t, c.Nodes[2], "bob")
	var readers []*reader
	for i := range 6 {
		n := c.Nodes[i%3]
		w := newUser(t, n, "w")
		require.NoError(t, groupAPI(t, n, w, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
		conn := dial(t, n, w)
		r := startReader(conn)
		syncNow(t, conn, r, nil)
		readers = append(readers, r)
	}
	bc := dial(t, c.Nodes[1], bob)
	syncNow(t, bc, startReader(bc), nil)
	for i, r := range readers {
		r.waitFor(t, 20*time.Second, fmt.Sprint("watcher ", i, " sees bob online"), func(r *reader) bool { return len(r.presencesLocked()) >= 1 })
	}
	require.NoError(t, bc.Close())
	for i, r := range readers {
		r.waitFor(t, 20*time.Second, fmt.Sprint("watcher ", i, " sees bob offline"), func(r *reader) bool { return len(r.presencesLocked()) >= 2 })
		var got []string
		for _, p := range r.presences() {
			got = append(got, p.Status)
		}
		require.Equal(t, []string{"online", "offline"}, got, "watcher %d", i)
	}
}

// A device that sends only pings for presence.awayAfter shows away to watchers; its
// next other frame shows it online again.
func TestPingOnlyDeviceShowsAway(t *testing.T) {
	n := startNode(t, fastConfig+"presence:\n  awayAfter: 400ms\n")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	require.NoError(t, groupAPI(t, n, alice, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
	ac := dial(t, n, alice)
	ar := startReader(ac)
	syncNow(t, ac, ar, nil)
	bc := dial(t, n, bob)
	br := startReader(bc)
	syncNow(t, bc, br, nil)
	ar.waitFor(t, 10*time.Second, "bob online", func(r *reader) bool { return len(r.presencesLocked()) == 1 })
	for range 10 { // 1.5 s of pings only
		time.Sleep(150 * time.Millisecond)
		require.NoError(t, bc.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}}))
	}
	ar.waitFor(t, 10*time.Second, "bob away", func(r *reader) bool { return len(r.presencesLocked()) == 2 })
	syncNow(t, bc, br, nil) // a frame that is not a heartbeat
	ar.waitFor(t, 10*time.Second, "bob back", func(r *reader) bool { return len(r.presencesLocked()) == 3 })
	var got []string
	for _, p := range ar.presences() {
		got = append(got, p.Status)
	}
	require.Equal(t, []string{"online", "away", "online"}, got)
}

// A contact added during a session is watched from then on, without a reconnect:
// alice, online, adds bob, online: she is told he is online at once, then each
// change; once she removes him, she hears no more.
func TestContactAddedLiveIsWatched(t *testing.T) {
	n := startNode(t, fastConfig+"presence:\n  grace: 200ms\n")
	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ca, cb := dial(t, n, alice), dial(t, n, bob)
	ra, rb := startReader(ca), startReader(cb)
	syncNow(t, ca, ra, nil)
	syncNow(t, cb, rb, nil)
	time.Sleep(300 * time.Millisecond) // both online, with no contact
	require.Empty(t, ra.presences())

	require.NoError(t, groupAPI(t, n, alice, http.MethodPut, "/v1/contacts/"+bob.UserID, nil, nil))
	ra.waitFor(t, 10*time.Second, "bob online, at once", func(r *reader) bool { return len(r.presencesLocked()) == 1 })
	p := ra.presences()[0]
	require.Equal(t, bob.UserID, p.User)
	require.Equal(t, "online", p.Status)

	require.NoError(t, cb.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Presence{Presence: &parleypb.SetPresence{Status: "away"}}}))
	ra.waitFor(t, 10*time.Second, "bob away", func(r *reader) bool { return len(r.presencesLocked()) == 2 })
	require.Equal(t, "away", ra.presences()[1].Status)

	require.NoError(t, groupAPI(t, n, alice, http.MethodDelete, "/v1/contacts/"+bob.UserID, nil, nil))
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, cb.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Presence{Presence: &parleypb.SetPresence{Status: "online"}}}))
	time.Sleep(600 * time.Millisecond)
	require.Len(t, ra.presences(), 2, "removed: no more of bob's changes")
	_ = rb
}
