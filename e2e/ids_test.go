package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/ids"
	"github.com/parleychat/parley/internal/testenv"
)

// Issue 3, acceptance 4: message ids stay unique across nodes and restarts (clean
// ones, which hand the node id on with its reserved floor, and crashes, after which
// the lease is still held and the restarted node takes another id).
func TestIDsUniqueAcrossNodesAndRestarts(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 3, 3)
	waitMembers(t, c, 3)
	var users []client.Session
	for i := range 6 {
		users = append(users, newUser(t, c.Nodes[i%3], fmt.Sprint("id", i)))
	}
	seen := map[int64]string{}
	nodes := map[int64]bool{}
	round := 0
	collect := func() {
		t.Helper()
		round++
		for i, u := range users {
			conn := dial(t, c.Nodes[i%3], u)
			r := startReader(conn)
			const count = 30
			for k := range count {
				require.NoError(t, conn.Write(sendFrame(fmt.Sprintf("r%d-%d", round, k), users[i^1].UserID, "id check")))
			}
			r.waitFor(t, 60*time.Second, "sent", func(r *reader) bool { return len(r.sent) == count })
			r.mu.Lock()
			for id, s := range r.sent {
				where := fmt.Sprintf("round %d user %d %s", round, i, id)
				require.NotContains(t, seen, s.MessageId, "id %d of %s repeats %s", s.MessageId, where, seen[s.MessageId])
				seen[s.MessageId] = where
				nodes[ids.NodeOf(s.MessageId)] = true
			}
			r.mu.Unlock()
			_ = conn.Close()
		}
	}
	collect()
	for _, n := range c.Nodes { // clean restarts: each node may get its old id back
		require.NoError(t, n.Stop(30*time.Second))
		n.Restart()
	}
	waitMembers(t, c, 3)
	collect()
	held := map[string]bool{}
	for _, n := range c.Nodes {
		held[lastNodeID(t, n)] = true
	}
	c.Nodes[0].Kill() // a crash: the lease is still held, so a new id is taken
	c.Nodes[0].Restart()
	waitMembers(t, c, 3)
	require.False(t, held[lastNodeID(t, c.Nodes[0])], "the crashed node came back under a new node id")
	collect()
	t.Logf("%d ids from %d node ids", len(seen), len(nodes))
	require.Len(t, seen, 3*6*30)
}

// lastNodeID is the node id a node's latest start logged.
func lastNodeID(t *testing.T, n *testenv.Node) string {
	t.Helper()
	id := ""
	for _, line := range strings.Split(n.Log(), "\n") {
		if strings.Contains(line, "msg=listening") {
			if i := strings.Index(line, " node="); i >= 0 {
				id = strings.Fields(line[i+len(" node="):])[0]
			}
		}
	}
	require.NotEmpty(t, id, "no node id in the log")
	return id
}
