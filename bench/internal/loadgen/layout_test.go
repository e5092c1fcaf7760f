package loadgen

import (
	"net"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLayoutDM(t *testing.T) {
	l := newLayout(ScenarioDM, 5, 500, 1)
	require.Equal(t, 5, l.users)
	require.Equal(t, []int{1, 0, 3, 2, -1}, l.peer)
	require.Equal(t, []int{1}, l.sources(0))
	require.Nil(t, l.sources(4), "the odd one out hears from nobody")
	peer, g, ok := l.sendsTo(3)
	require.True(t, ok)
	require.Equal(t, 2, peer)
	require.Equal(t, -1, g)
	_, _, ok = l.sendsTo(4)
	require.False(t, ok)
}

func TestLayoutGroup(t *testing.T) {
	l := newLayout(ScenarioGroup, 40, 20, 3)
	require.Equal(t, 40, l.users)
	require.Len(t, l.groups, 2)
	require.Equal(t, span(20, 40), l.groups[1])
	require.Equal(t, []int{20, 21, 22}, l.senders[1])
	require.Equal(t, []int{21, 22}, l.sources(20), "a sender does not hear from itself")
	require.Equal(t, []int{0, 1, 2}, l.sources(19))
	_, g, ok := l.sendsTo(21)
	require.True(t, ok)
	require.Equal(t, 1, g)
	_, _, ok = l.sendsTo(23)
	require.False(t, ok, "only the first senders send")
}

func TestLayoutStorm(t *testing.T) {
	l := newLayout(ScenarioStorm, 10, 5, 1) // 4 clients and a sender per group
	require.Equal(t, 10, l.clients)
	require.Equal(t, 13, l.users, "three senders after the clients")
	require.Equal(t, [][]int{{10, 0, 1, 2, 3}, {11, 4, 5, 6, 7}, {12, 8, 9}}, l.groups)
	require.Equal(t, [][]int{{10}, {11}, {12}}, l.senders)
	for r := range l.clients {
		require.Equal(t, []int{10 + r/4}, l.sources(r))
	}
	_, g, ok := l.sendsTo(12)
	require.True(t, ok)
	require.Equal(t, 2, g)
	_, _, ok = l.sendsTo(0)
	require.False(t, ok)
}

func TestLayoutIdle(t *testing.T) {
	l := newLayout(ScenarioIdle, 3, 500, 1)
	require.Equal(t, 3, l.users)
	require.Nil(t, l.sources(1))
	_, _, ok := l.sendsTo(0)
	require.False(t, ok)
}

func TestBitset(t *testing.T) {
	var a, b bitset
	require.False(t, a.set(3))
	require.True(t, a.set(3), "a second set reports the member")
	require.False(t, a.set(200))
	require.False(t, a.set(0))
	require.Equal(t, 3, a.count())
	require.False(t, b.set(3))
	require.Equal(t, 2, a.missingFrom(b))
	require.Equal(t, 0, b.missingFrom(a))
	require.Equal(t, 3, a.missingFrom(nil))
	c := a.clone()
	c.set(5)
	require.Equal(t, 3, a.count(), "a clone is a copy")
	require.Equal(t, 4, c.count())
}

func TestListeningInodes(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0200007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 222 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0000000000000000 100 0 0 10 0
`
	require.Equal(t, map[string]bool{"111": true}, listeningInodes(table, 8080))
	require.Equal(t, map[string]bool{"333": true}, listeningInodes(table, 8081))
	require.Empty(t, listeningInodes(table, 9999))
}

// TestLost counts, per receiver, the acked messages of its sources it lacks.
func TestLost(t *testing.T) {
	w := mustWorker(t, WorkerConfig{Scenario: ScenarioGroup, Conns: 4, Members: 4, Senders: 2, Encoding: "json"})
	for i := range 4 {
		w.conns[i] = w.newConn(i)
	}
	ack := func(i int, ns ...uint64) {
		for _, n := range ns {
			w.conns[i].acked.set(n)
		}
	}
	got := func(r, from int, ns ...uint64) {
		for _, n := range ns {
			_, _ = w.conns[r].receive([]byte(w.conns[from].user), n)
		}
	}
	ack(0, 1, 2, 3)
	ack(1, 1)
	got(1, 0, 1, 2, 3) // sender 1 has all of sender 0's
	got(2, 0, 1, 3, 4) // lacks 2; 4 was never acked: not owed
	got(2, 1, 1)       //
	got(3, 1, 1)       // lacks all of sender 0's
	require.Equal(t, uint64(1+1+3), w.lost(), "sender 0 lacks 1's #1, member 2 lacks #2, member 3 lacks 3")
	w.conns[3] = nil // a member that never connected owes nothing
	require.Equal(t, uint64(2), w.lost())
}

func TestListenerPIDSelf(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	pids, err := ListenerPIDs([]string{"http://" + ln.Addr().String()})
	require.NoError(t, err)
	require.Equal(t, []int{os.Getpid()}, pids)
	_, err = ListenerPIDs([]string{"http://127.0.0.1:1"})
	require.ErrorContains(t, err, "nothing listens")
}
