package e2e

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/wire"
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
	syncNow(t, bc, br, nil) // bob's last frame
	quiet := time.Now()

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
