package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
)

// zkConfig is fastConfig with a 4 s ZooKeeper session (the least ZooKeeper grants
// with tickTime 2000): a node cut off from ZooKeeper longer than that is dropped.
const zkConfig = fastConfig + `
cluster:
  zookeeper:
    sessionTimeout: 4s
`

// memberIDs are the member ids a node's admin endpoint reports.
func memberIDs(t *testing.T, n *testenv.Node) []string {
	t.Helper()
	var ids []string
	for _, m := range members(t, n) {
		ids = append(ids, m.ID)
	}
	sort.Strings(ids)
	return ids
}

// waitNodeMembers waits until every node sees want members, and returns how long it took.
func waitNodeMembers(t *testing.T, nodes []*testenv.Node, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	testenv.CheckFor(t, within, 50*time.Millisecond, func() error {
		for i, n := range nodes {
			if got := membersOf(t, n); got != want {
				return fmt.Errorf("node %d sees %d members, want %d", i, got, want)
			}
		}
		return nil
	})
	return time.Since(start)
}

// Issue 3, acceptance 1 with ZooKeeper membership: three nodes, 60 users, every
// pair exchanges messages; everyone gets everything once, in order.
func TestZooKeeperClusterEveryPair(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	nodes := testenv.StartZKCluster(t, testenv.DatabaseURL(t), zk, fastConfig, 3)
	waitNodeMembers(t, nodes, 3, 30*time.Second)
	everyPair(t, nodes)
}

// chatter is a user with its open connection on one node.
type chatter struct {
	node    int
	session client.Session
	conn    *client.Conn
	reader  *reader
}

func (c *chatter) connect(t *testing.T, nodes []*testenv.Node) {
	t.Helper()
	c.conn = dial(t, nodes[c.node], c.session)
	c.reader = startReader(c.conn)
	syncNow(t, c.conn, c.reader, nil)
}

// exchange has every chatter of who send one message to every other, re-sending
// (same id) what is answered with an error, until every send is answered sent.
// It returns the texts each chatter must end up with.
func exchange(t *testing.T, chatters []*chatter, who []int, round string, want map[int][]string) {
	t.Helper()
	text := func(i, j int) string { return fmt.Sprintf("%s: %d to %d", round, i, j) }
	id := func(j int) string { return fmt.Sprintf("%s-%d", round, j) }
	var wg sync.WaitGroup
	for _, i := range who {
		for _, j := range who {
			if i != j {
				want[i] = append(want[i], text(i, j))
				want[j] = append(want[j], text(i, j))
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, j := range who {
				if j != i {
					_ = chatters[i].conn.Write(sendFrame(id(j), chatters[j].session.UserID, text(i, j)))
				}
			}
		}()
	}
	wg.Wait()
	for _, i := range who {
		c := chatters[i]
		testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
			c.reader.mu.Lock()
			var missing []int
			for _, j := range who {
				if j != i && c.reader.sent[id(j)] == nil {
					missing = append(missing, j)
				}
			}
			errs := c.reader.errors
			c.reader.errors = nil
			c.reader.mu.Unlock()
			if len(missing) == 0 {
				return nil
			}
			if len(errs) > 0 { // answered with an error: send those again
				for _, j := range missing {
					_ = c.conn.Write(sendFrame(id(j), chatters[j].session.UserID, text(i, j)))
				}
			}
			return fmt.Errorf("%s: user %d: %d sends not answered sent (errors %v)", round, i, len(missing), errs)
		})
	}
}

// requireDelivered checks that each chatter's stream has exactly the wanted texts,
// each once, with consecutive seqs from 1.
func requireDelivered(t *testing.T, chatters []*chatter, want map[int][]string) {
	t.Helper()
	for i, c := range chatters {
		c.reader.waitFor(t, 60*time.Second, fmt.Sprintf("user %d: %d messages", i, len(want[i])), func(r *reader) bool {
			return len(r.messages) >= len(want[i])
		})
	}
	time.Sleep(300 * time.Millisecond) // nothing more may come
	for i, c := range chatters {
		msgs, _, _, _ := c.reader.snapshot()
		requireStream(t, msgs, 1)
		got := make([]string, len(msgs))
		for k, m := range msgs {
			got[k] = m.Text
		}
		slices.Sort(got)
		exp := slices.Clone(want[i])
		slices.Sort(exp)
		require.Equal(t, exp, got, "user %d (node %d): every message once", i, c.node)
	}
}

// duplicateGrains lists the identities active on more than one node.
func duplicateGrains(t *testing.T, nodes []*testenv.Node) []string {
	t.Helper()
	where := map[string][]int{}
	for i, n := range nodes {
		for _, g := range activeGrains(t, n) {
			where[g] = append(where[g], i)
		}
	}
	var dups []string
	for g, on := range where {
		if len(on) > 1 {
			dups = append(dups, fmt.Sprintf("%s on nodes %v", g, on))
		}
	}
	sort.Strings(dups)
	return dups
}

// A node cut off from ZooKeeper longer than its session is dropped by the others; it
// notices once ZooKeeper answers again, leaves and exits with code 3; restarted (a
// new process on a fresh remote port: a new member id) it is admitted by everyone.
// Nothing is lost or delivered twice, and no grain ends up active on two nodes.
func TestZooKeeperEvictedNodeRejoins(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	proxy := testenv.StartProxy(t, zk) // node 2's only way to ZooKeeper
	db := testenv.DatabaseURL(t)
	nodes := []*testenv.Node{
		testenv.StartNode(t, db, zkConfig, testenv.ZooKeeperEnv(zk)...),
		testenv.StartNode(t, db, zkConfig, testenv.ZooKeeperEnv(zk)...),
		testenv.StartNode(t, db, zkConfig, testenv.ZooKeeperEnv(proxy.Addr)...),
	}
	waitNodeMembers(t, nodes, 3, 30*time.Second)
	before := memberIDs(t, nodes[0])

	const users = 12
	chatters := make([]*chatter, users)
	for i := range chatters {
		chatters[i] = &chatter{node: i % len(nodes)}
		chatters[i].session = newUser(t, nodes[chatters[i].node], fmt.Sprintf("z%02d", i))
		chatters[i].connect(t, nodes)
	}
	everyone := make([]int, users)
	var survivors []int // connected to nodes 0 and 1
	for i := range everyone {
		everyone[i] = i
		if chatters[i].node != 2 {
			survivors = append(survivors, i)
		}
	}
	want := map[int][]string{}
	exchange(t, chatters, everyone, "before", want)
	requireDelivered(t, chatters, want)

	// Cut node 2 off from ZooKeeper for at least 8 s (two session timeouts).
	const cut = 8 * time.Second
	proxy.Drop()
	dropped := time.Now()
	gone := waitNodeMembers(t, nodes[:2], 2, 20*time.Second)
	t.Logf("the others dropped node 2 %v after the cut", gone.Round(time.Millisecond))
	require.Len(t, memberIDs(t, nodes[2]), 3, "node 2, cut off, still sees everyone")
	// The others keep serving their users meanwhile.
	exchange(t, chatters, survivors, "during", want)
	time.Sleep(time.Until(dropped.Add(cut)))
	proxy.Heal()
	healed := time.Now()

	code, err := nodes[2].Wait(60 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 3, code, "node 2 exits with the eviction code")
	t.Logf("node 2 exited with code %d %v after the heal (%v after the cut)", code,
		time.Since(healed).Round(time.Millisecond), time.Since(dropped).Round(time.Millisecond))
	require.Contains(t, nodes[2].Log(), "vanished")
	require.Equal(t, 2, membersOf(t, nodes[0]))
	require.Equal(t, 2, membersOf(t, nodes[1]))

	restarted := time.Now()
	nodes[2].Restart()
	rejoin := waitNodeMembers(t, nodes, 3, 30*time.Second)
	t.Logf("node 2 restarted; everyone sees 3 members %v after it served health checks (%v after the start)",
		rejoin.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	after := memberIDs(t, nodes[0])
	for i := range nodes {
		require.Equal(t, after, memberIDs(t, nodes[i]), "node %d: one view", i)
	}
	require.NotEqual(t, before, after, "node 2 is back under a new member id")
	t.Logf("members before %v, after %v", before, after)

	// The users of node 2 lost their connections: they connect again and catch up.
	for _, c := range chatters {
		if c.node == 2 {
			c.connect(t, nodes)
		}
	}
	exchange(t, chatters, everyone, "after", want)
	requireDelivered(t, chatters, want)

	if dups := duplicateGrains(t, nodes); len(dups) > 0 {
		t.Logf("right after the exchange, active on two nodes: %v", dups)
	}
	testenv.CheckFor(t, 15*time.Second, 200*time.Millisecond, func() error {
		if dups := duplicateGrains(t, nodes); len(dups) > 0 {
			return fmt.Errorf("grains active on two nodes: %v", dups)
		}
		return nil
	})
	for i, n := range nodes {
		t.Logf("node %d hosts %d grains", i, len(activeGrains(t, n)))
	}
	for _, line := range strings.Split(nodes[2].Log(), "\n") {
		if strings.Contains(line, "membership:") || strings.Contains(line, "node stopped") {
			t.Logf("node 2: %s", line)
		}
	}
}
