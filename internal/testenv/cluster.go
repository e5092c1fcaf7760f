package testenv

import (
	"strings"
	"testing"
)

// Cluster is a set of node processes on loopback with the automanaged provider.
// Its nodes, like every node of one test, share a token key file
// (Node.TokenSecretFile), so that a token one of them issued is good on the others.
type Cluster struct {
	t     testing.TB
	db    string
	yaml  string
	peers []string // health endpoints of every slot, started or not
	Nodes []*Node
}

// StartCluster starts n nodes with room for up to slots (later Add calls): every
// node lists every slot's health endpoint as a peer.
func StartCluster(t testing.TB, dbURL, yaml string, n, slots int) *Cluster {
	t.Helper()
	c := &Cluster{t: t, db: dbURL, yaml: yaml}
	for range slots {
		c.peers = append(c.peers, freeAddr(t))
	}
	for range n {
		c.Add()
	}
	return c
}

// Add starts the next node slot.
func (c *Cluster) Add(env ...string) *Node {
	c.t.Helper()
	i := len(c.Nodes)
	if i >= len(c.peers) {
		c.t.Fatalf("cluster has %d slots", len(c.peers))
	}
	port := c.peers[i][strings.LastIndex(c.peers[i], ":")+1:]
	base := []string{
		"PARLEY_CLUSTER_PROVIDER=automanaged",
		"PARLEY_AUTOMANAGED_PORT=" + port,
		"PARLEY_AUTOMANAGED_PEERS=" + strings.Join(c.peers, ","),
	}
	n := StartNode(c.t, c.db, c.yaml, append(base, env...)...)
	c.Nodes = append(c.Nodes, n)
	return n
}
