package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/internal/testenv"
)

// A node id is held by one live node: a second node configured with the same id
// refuses to start with a clear error; leased ids differ between nodes.
func TestNodeIDIsUnique(t *testing.T) {
	db := testenv.DatabaseURL(t)
	testenv.StartNode(t, db, fastConfig, "PARLEY_NODE_ID=7")

	second := testenv.NodeCommand(testenv.Context(t, 60*time.Second), t, db,
		"-http", "127.0.0.1:0", "-admin", "off", "-node-id", "7")
	out, err := second.CombinedOutput()
	require.Error(t, err, "the second node must not start")
	require.Contains(t, string(out), "node id 7 is held by another live node")

	// Leased ids: two nodes without an id get different ones.
	a := testenv.StartNode(t, db, fastConfig)
	b := testenv.StartNode(t, db, fastConfig)
	require.NotEqual(t, nodeOf(t, a), nodeOf(t, b))
	require.NotEqual(t, "7", nodeOf(t, a))
}

// nodeOf reads the node id a node logged.
func nodeOf(t *testing.T, n *testenv.Node) string {
	t.Helper()
	for _, line := range strings.Split(n.Log(), "\n") {
		if i := strings.Index(line, " node="); i >= 0 {
			return strings.Fields(line[i+len(" node="):])[0]
		}
	}
	t.Fatalf("no node id in the log: %s", n.Log())
	return ""
}
