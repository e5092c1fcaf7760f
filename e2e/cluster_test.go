package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
	"github.com/parleychat/parley/proto/parleypb"
)

// activeGrains asks a node's admin endpoint which grains it hosts.
func activeGrains(t *testing.T, n *testenv.Node) []string {
	t.Helper()
	var body struct {
		Grains []struct {
			ID string `json:"grain"`
		} `json:"grains"`
	}
	adminGet(t, n, "/admin/grains?node=self&limit=10000", &body)
	out := make([]string, len(body.Grains))
	for i, g := range body.Grains {
		out[i] = g.ID
	}
	return out
}

// adminGet reads a node's admin endpoint into out.
func adminGet(t *testing.T, n *testenv.Node, path string, out any) {
	t.Helper()
	res, err := http.Get(n.AdminURL + path)
	require.NoError(t, err)
	defer res.Body.Close()
	require.NoError(t, json.NewDecoder(res.Body).Decode(out))
}

// membersOf is the member count a node's admin endpoint reports.
func membersOf(t *testing.T, n *testenv.Node) int { return len(members(t, n)) }

func waitMembers(t *testing.T, c *testenv.Cluster, want int) {
	t.Helper()
	testenv.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		for i, n := range c.Nodes {
			if got := membersOf(t, n); got != want {
				return fmt.Errorf("node %d sees %d members, want %d", i, got, want)
			}
		}
		return nil
	})
}

// Issue 3, acceptance 1: three nodes, 60 users spread over them, every pair exchanges
// messages: everyone gets everything once, in order.
func TestClusterEveryPair(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 3, 3)
	waitMembers(t, c, 3)
	everyPair(t, c.Nodes)
}

// everyPair spreads 60 users over the nodes; every pair exchanges messages: everyone
// gets everything once, in order, and every node hosts grains.
func everyPair(t *testing.T, nodes []*testenv.Node) {
	const users = 60
	sessions := make([]client.Session, users)
	conns := make([]*client.Conn, users)
	readers := make([]*reader, users)
	for i := range users {
		n := nodes[i%len(nodes)]
		sessions[i] = newUser(t, n, fmt.Sprintf("u%02d", i))
		conns[i] = dial(t, n, sessions[i])
		readers[i] = startReader(conns[i])
		syncNow(t, conns[i], readers[i], nil)
	}

	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range users {
				if j != i {
					require.NoError(t, conns[i].Write(sendFrame(fmt.Sprintf("to-%d", j), sessions[j].UserID,
						fmt.Sprintf("%d says hi to %d", i, j))))
				}
			}
		}()
	}
	wg.Wait()

	// order[conversation] is the message order the first member saw; the other must agree.
	order := map[string][]int64{}
	for i, r := range readers {
		r.waitFor(t, 120*time.Second, fmt.Sprintf("user %d: all sent and delivered", i), func(r *reader) bool {
			// "unavailable" means: send it again with the same id (docs/PROTOCOL.md).
			r.errors = slices.DeleteFunc(r.errors, func(e *parleypb.Error) bool {
				var j int
				if _, err := fmt.Sscanf(e.Id, "to-%d", &j); e.Code != "unavailable" || err != nil {
					return false
				}
				_ = conns[i].Write(sendFrame(e.Id, sessions[j].UserID, fmt.Sprintf("%d says hi to %d", i, j)))
				return true
			})
			return len(r.sent) == users-1 && len(r.messages) == 2*(users-1)
		})
		msgs, _, errs, _ := r.snapshot()
		require.Empty(t, errs, "user %d", i)
		requireStream(t, msgs, 1)
		per := map[string][]int64{}
		for _, m := range msgs {
			per[m.Conversation] = append(per[m.Conversation], m.MessageId)
		}
		require.Len(t, per, users-1, "user %d talks with everyone", i)
		for conv, ids := range per {
			require.Len(t, ids, 2)
			require.Less(t, ids[0], ids[1], "messageId order within %s", conv)
			if seen, ok := order[conv]; ok {
				require.Equal(t, seen, ids, "both members of %s see one order", conv)
			} else {
				order[conv] = ids
			}
		}
	}

	// The grains are spread: every node hosts some.
	for i, n := range nodes {
		grains := activeGrains(t, n)
		var users, convs int
		for _, g := range grains {
			switch {
			case strings.HasPrefix(g, "User/"):
				users++
			case strings.HasPrefix(g, "Conversation/"):
				convs++
			}
		}
		t.Logf("node %d hosts %d user grains and %d conversation grains", i, users, convs)
		require.Positive(t, users, "node %d", i)
		require.Positive(t, convs, "node %d", i)
	}
}
