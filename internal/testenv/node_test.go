package testenv

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/wire"
)

// The nodes a test starts keep their token key in a file in the test's temporary
// directory, never in the default one under the home directory (here under
// $XDG_STATE_HOME), and share it, as a cluster's nodes must: a token one node
// issued is good on the others, a cluster's included.
func TestNodesShareTheTestsKeyFile(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state) // where the default key file would be
	const yaml = "auth:\n  bcryptCost: 4\n"
	db := DatabaseURL(t)
	n := StartNode(t, db, yaml)
	c := StartCluster(t, db, yaml, 2, 2)

	require.NoDirExists(t, filepath.Join(state, "parley"), "a node used the default key file")
	require.FileExists(t, n.TokenSecretFile)
	for _, m := range c.Nodes {
		require.Equal(t, n.TokenSecretFile, m.TokenSecretFile)
	}

	ctx := Context(t, 30*time.Second)
	const password = "correct horse battery"
	name := Name("key")
	require.NoError(t, client.Register(ctx, n.URL, name, password))
	s, err := client.Login(ctx, n.URL, name, password, "")
	require.NoError(t, err)
	for _, m := range c.Nodes {
		conn, err := client.Dial(ctx, m.URL, s.Token, wire.JSON)
		require.NoError(t, err, "the token of %s on %s", n.URL, m.URL)
		require.NoError(t, conn.Close())
	}
}
