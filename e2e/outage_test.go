package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/internal/wire"
)

// While Postgres is unreachable a send is answered unavailable (never sent), REST
// answers 503 and the node and its sockets stay up; once it is back everything
// resumes without a restart, and nothing acknowledged before is lost (issue 10).
func TestPostgresOutage(t *testing.T) {
	db := testenv.DatabaseURL(t)
	u, err := url.Parse(db)
	require.NoError(t, err)
	proxy := testenv.StartProxy(t, u.Host)
	u.Host = proxy.Addr
	// Token checks keep a device's logout state for 1s only, so that an upgrade
	// during the outage needs the store.
	n := testenv.StartNode(t, u.String(), strings.Replace(fastConfig, "auth:\n", "auth:\n  sessionCacheTTL: 1s\n", 1))

	alice, bob := newUser(t, n, "alice"), newUser(t, n, "bob")
	ac, bc := dial(t, n, alice), dial(t, n, bob)
	ar, br := startReader(ac), startReader(bc)
	syncNow(t, ac, ar, nil)
	syncNow(t, bc, br, nil)
	phone := device(t, n, bob, "phone")
	require.NoError(t, ac.Write(sendFrame("before", bob.UserID, "acked before the outage")))
	ar.waitFor(t, 10*time.Second, "sent before", func(r *reader) bool { return r.sent["before"] != nil })

	proxy.Drop() // every store connection is cut, and new ones are refused
	require.NoError(t, ac.Write(sendFrame("during", bob.UserID, "sent during the outage")))
	ar.waitFor(t, 30*time.Second, "an answer during the outage", func(r *reader) bool {
		return r.sent["during"] != nil || r.errorFor("during") != nil
	})
	require.False(t, ar.sentID("during"), "sent while the store is down")
	e := ar.errorOf("during")
	require.Equal(t, "unavailable", e.Code, e.Message)

	var status *client.APIError
	err = groupAPI(t, n, alice, http.MethodGet, "/v1/users/"+bob.UserID, nil, nil)
	require.True(t, errors.As(err, &status), "REST during the outage: %v", err)
	require.Equal(t, http.StatusServiceUnavailable, status.Status, "%v", err)
	_, err = client.Login(testenv.Context(t, 30*time.Second), n.URL, alice.UserID, password, "")
	require.True(t, errors.As(err, &status), "login during the outage: %v", err)
	require.Equal(t, http.StatusServiceUnavailable, status.Status, "%v", err)
	// An upgrade reads the device's logout state from the store: 503, not 401 (the
	// token is good; the node cannot tell now).
	time.Sleep(1100 * time.Millisecond) // past the cache of the phone's login
	_, err = client.Dial(testenv.Context(t, 10*time.Second), n.URL, phone.Token, wire.JSON)
	var refused ws.StatusError
	require.True(t, errors.As(err, &refused), "upgrade during the outage: %v", err)
	require.Equal(t, http.StatusServiceUnavailable, int(refused))
	select {
	case <-ar.done:
		t.Fatalf("alice's socket closed during the outage: %v", ar.err)
	default:
	}

	proxy.Heal()
	// The client repeats the send answered unavailable, with the same id, until it
	// is sent: no restart, and one message however many repeats.
	testenv.CheckFor(t, 30*time.Second, 500*time.Millisecond, func() error {
		if ar.sentID("during") {
			return nil
		}
		if err := ac.Write(sendFrame("during", bob.UserID, "sent during the outage")); err != nil {
			return err
		}
		return fmt.Errorf("not sent yet")
	})
	require.NoError(t, ac.Write(sendFrame("after", bob.UserID, "after the outage")))
	ar.waitFor(t, 10*time.Second, "sent after", func(r *reader) bool { return r.sent["after"] != nil })
	require.NoError(t, groupAPI(t, n, alice, http.MethodGet, "/v1/users/"+bob.UserID, nil, nil))
	pc := dial(t, n, phone)
	syncNow(t, pc, startReader(pc), nil)

	// Bob, on a fresh connection, has each message once, in order.
	bc2 := dial(t, n, bob)
	br2 := startReader(bc2)
	syncAll(t, bc2, br2)
	msgs, _, _, _ := br2.snapshot()
	var got []string
	for _, m := range msgs {
		got = append(got, m.ClientId)
	}
	require.Equal(t, []string{"before", "during", "after"}, got)
}
