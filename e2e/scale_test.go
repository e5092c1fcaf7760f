package e2e

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/testenv"
)

// pairLoad is steady traffic between pairs of users (user 2k and 2k+1), each on a
// node of the cluster, with raw connections.
type pairLoad struct {
	t        *testing.T
	sessions []client.Session
	conns    []*client.Conn
	readers  []*reader
	sent     []atomic.Int64 // messages each user has sent
	stop     chan struct{}
	wg       sync.WaitGroup
}

// startPairLoad registers users spread over nodes and starts them sending.
func startPairLoad(t *testing.T, nodes []*testenv.Node, users int, every time.Duration) *pairLoad {
	t.Helper()
	var sessions []client.Session
	var at []*testenv.Node
	for i := range users {
		n := nodes[i%len(nodes)]
		sessions, at = append(sessions, newUser(t, n, fmt.Sprintf("p%02d", i))), append(at, n)
	}
	l := newPairLoad(t, sessions, at)
	l.run(every)
	return l
}

// newPairLoad connects each session to its node and syncs it.
func newPairLoad(t *testing.T, sessions []client.Session, nodes []*testenv.Node) *pairLoad {
	t.Helper()
	l := &pairLoad{t: t, stop: make(chan struct{}), sessions: sessions, sent: make([]atomic.Int64, len(sessions))}
	for i, s := range sessions {
		c := dial(t, nodes[i], s)
		r := startReader(c)
		syncNow(t, c, r, nil)
		l.conns, l.readers = append(l.conns, c), append(l.readers, r)
	}
	return l
}

// run makes every user send to its partner once per every, until stop.
func (l *pairLoad) run(every time.Duration) {
	for i := range l.sessions {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for k := 0; ; k++ {
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
				if l.conns[i].Write(sendFrame(fmt.Sprint("m", k), l.partner(i).UserID, fmt.Sprint(i, " says ", k))) != nil {
					return
				}
				l.sent[i].Add(1)
			}
		}()
	}
}

func (l *pairLoad) partner(i int) client.Session { return l.sessions[i^1] }

// confirm stops the load and re-sends (same ids) whatever was not answered sent,
// until everything is; it returns how many messages were sent.
func (l *pairLoad) confirm() (total int) {
	t := l.t
	close(l.stop)
	l.wg.Wait()
	for i, r := range l.readers {
		n := int(l.sent[i].Load())
		total += n
		testenv.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
			r.mu.Lock()
			var missing []int
			for k := range n {
				if r.sent[fmt.Sprint("m", k)] == nil {
					missing = append(missing, k)
				}
			}
			r.errors = nil
			r.mu.Unlock()
			for _, k := range missing {
				_ = l.conns[i].Write(sendFrame(fmt.Sprint("m", k), l.partner(i).UserID, fmt.Sprint(i, " says ", k)))
			}
			if len(missing) > 0 {
				return fmt.Errorf("user %d: %d of %d not answered sent", i, len(missing), n)
			}
			return nil
		})
	}
	return total
}

// finish confirms every send and checks that every user has every message of its
// pair once, in order, on its live connection.
func (l *pairLoad) finish() (total int) {
	t := l.t
	total = l.confirm()
	for i, r := range l.readers {
		want := int(l.sent[i].Load() + l.sent[i^1].Load())
		r.waitFor(t, 60*time.Second, fmt.Sprintf("user %d: all %d messages", i, want), func(r *reader) bool {
			return len(r.messages) >= want
		})
		time.Sleep(100 * time.Millisecond)
		msgs, _, _, _ := r.snapshot()
		require.Len(t, msgs, want, "user %d: every message once", i)
		require.True(t, sorted(requireStream(t, msgs, 1)), "user %d: messageId order", i)
	}
	return total
}

// Issue 3, acceptance 3: a fourth node joins under load: grains spread to it, and
// nothing is lost or duplicated.
func TestNodeJoinsUnderLoad(t *testing.T) {
	c := testenv.StartCluster(t, testenv.DatabaseURL(t), fastConfig, 3, 4)
	waitMembers(t, c, 3)
	load := startPairLoad(t, c.Nodes, 20, 100*time.Millisecond) // 200 msgs/s
	time.Sleep(2 * time.Second)
	fourth := c.Add()
	waitMembers(t, c, 4)
	time.Sleep(3 * time.Second)
	total := load.finish()
	t.Logf("%d messages sent across the join", total)
	testenv.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if len(activeGrains(t, fourth)) == 0 {
			return fmt.Errorf("no grains on the new node")
		}
		return nil
	})
	t.Logf("the new node hosts %d grains", len(activeGrains(t, fourth)))
}
