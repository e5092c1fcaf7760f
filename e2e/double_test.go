package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/actors"
	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/testenv"
)

// Issue 3, acceptance 6: two live activations of one conversation grain. Node B's
// provider knows only B while A knows A and B, so the members disagree for good: a
// conversation that A's view places on A is activated on A by A's clients and on B
// by B's clients. Both write; the store lets one append at a time, the loser stops,
// and no message is lost or duplicated.
func TestDoubleActivation(t *testing.T) {
	db := testenv.DatabaseURL(t)
	aHealth, bHealth := freePort(t), freePort(t)
	a := testenv.StartNode(t, db, fastConfig, "PARLEY_CLUSTER_PROVIDER=automanaged",
		"PARLEY_AUTOMANAGED_PORT="+aHealth, "PARLEY_AUTOMANAGED_PEERS=127.0.0.1:"+aHealth+",127.0.0.1:"+bHealth)
	b := testenv.StartNode(t, db, fastConfig, "PARLEY_CLUSTER_PROVIDER=automanaged",
		"PARLEY_AUTOMANAGED_PORT="+bHealth, "PARLEY_AUTOMANAGED_PEERS=127.0.0.1:"+bHealth)
	var aView []actors.Member
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		aView = members(t, a)
		if len(aView) != 2 || len(members(t, b)) != 1 {
			return fmt.Errorf("views: A sees %d, B sees %d", len(aView), len(members(t, b)))
		}
		return nil
	})
	// Pick two users whose conversation A's view places on A (B places everything on B).
	rdv := cluster.NewRendezvous()
	var ms []*cluster.Member
	for _, m := range aView {
		host, port, _ := strings.Cut(m.Address, ":")
		var p int32
		fmt.Sscan(port, &p)
		ms = append(ms, &cluster.Member{Id: m.ID, Host: host, Port: p, Kinds: m.Kinds})
	}
	rdv.UpdateMembers(ms)
	aAddr := "" // A's address is the one B does not know
	for _, m := range aView {
		if m.Address != members(t, b)[0].Address {
			aAddr = m.Address
		}
	}
	var alice, bob client.Session
	for i := 0; ; i++ {
		an, bn := testenv.Name("alice"), testenv.Name("bob")
		conv := convid.DirectID(an, bn)
		if rdv.GetByClusterIdentity(&cluster.ClusterIdentity{Kind: actors.KindConversation, Identity: conv}) == aAddr {
			alice, bob = registerAs(t, a, an), registerAs(t, b, bn)
			break
		}
		require.Less(t, i, 100)
	}

	load := newPairLoad(t, []client.Session{alice, bob}, []*testenv.Node{a, b})
	load.run(20 * time.Millisecond)
	time.Sleep(3 * time.Second)
	total := load.confirm()
	t.Logf("%d messages sent from both sides", total)

	// Both nodes saw the other writer and stepped back at least once.
	yields := strings.Count(a.Log()+b.Log(), "another activation writes this conversation; stopping")
	t.Logf("conversation activations that met the other writer and stopped: %d", yields)
	require.Positive(t, yields, "the test must have produced two writers")

	// Every message once, in order, for both, from the store (fresh connections).
	for i, n := range []*testenv.Node{a, b} {
		conn := dial(t, n, load.sessions[i])
		r := startReader(conn)
		syncNow(t, conn, r, ptr(uint64(0)))
		r.waitFor(t, 30*time.Second, "all messages", func(r *reader) bool { return len(r.messages) >= total })
		msgs, _, _, _ := r.snapshot()
		require.Len(t, msgs, total)
		require.True(t, sorted(requireStream(t, msgs, 1)), "user %d: one order", i)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	return addr[strings.LastIndex(addr, ":")+1:]
}

func members(t *testing.T, n *testenv.Node) []actors.Member {
	t.Helper()
	var body struct {
		Members []actors.Member `json:"members"`
	}
	adminGet(t, n, "/admin/members", &body)
	return body.Members
}

func registerAs(t *testing.T, n *testenv.Node, name string) client.Session {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	require.NoError(t, client.Register(ctx, n.URL, name, password))
	s, err := client.Login(ctx, n.URL, name, password, "")
	require.NoError(t, err)
	return s
}
