package loadgen

import "fmt"

// Scenarios.
const (
	ScenarioDM    = "dm"    // pairs of users send each other 1:1 messages
	ScenarioGroup = "group" // groups of members, a few senders each, every member online
	ScenarioIdle  = "idle"  // connections only, held for the duration
	ScenarioStorm = "storm" // every client reconnects at once and syncs what it missed
	// ScenarioChannel: one owner posts to a channel of Members, Online of them
	// connected and following it live (fan-out on read).
	ScenarioChannel = "channel"
)

// MaxConnsPerProc is the most client sockets one worker process holds: the
// sandbox caps open files at 20,000 per process (research/machine.md §4), and a
// worker needs a few more for its HTTP calls, pipes and the runtime.
const MaxConnsPerProc = 19000

// layout is who one worker's users are and what they do. User i is
// "<prefix>-<worker>-<i>"; users [0, clients) are the measured connections, and
// in a storm users [clients, users) are the groups' senders; in a channel they
// are the members that stay offline and, in worker 0, the owner (the last).
type layout struct {
	users   int
	clients int
	channel bool    // a channel's layout (channelLayout)
	owner   int     // channel: the owner's user index, -1 for none (not in this worker)
	peer    []int   // dm: the partner of each user, -1 for none
	groups  [][]int // members by user index, the owner first
	senders [][]int // the senders of each group
	groupOf []int   // the group of each user, -1 for none
}

// newLayout arranges a worker's clients for a scenario: dm pairs 2k with 2k+1;
// group cuts them into groups of members, whose first senders send; storm cuts
// them into groups of members-1 and adds one sender (the owner) to each.
func newLayout(scenario string, clients, members, senders int) layout {
	l := layout{users: clients, clients: clients, owner: -1}
	switch scenario {
	case ScenarioDM:
		l.peer = make([]int, clients)
		for i := range clients {
			l.peer[i] = i ^ 1
			if l.peer[i] >= clients {
				l.peer[i] = -1
			}
		}
	case ScenarioGroup:
		for first := 0; first < clients; first += members {
			g := span(first, min(first+members, clients))
			l.groups = append(l.groups, g)
			l.senders = append(l.senders, g[:min(senders, len(g))])
		}
	case ScenarioStorm:
		per := max(1, members-1)
		for first := 0; first < clients; first += per {
			sender := clients + len(l.groups)
			l.groups = append(l.groups, append([]int{sender}, span(first, min(first+per, clients))...))
			l.senders = append(l.senders, []int{sender})
		}
		l.users += len(l.groups)
	}
	l.index()
	return l
}

// channelLayout is a channel worker's users: clients online members, offline
// members that only have accounts, and with owner the channel's owner last.
func channelLayout(clients, offline int, owner bool) layout {
	l := layout{users: clients + offline, clients: clients, channel: true, owner: -1}
	if owner {
		l.owner = l.users
		l.users++
	}
	l.index()
	return l
}

// index fills groupOf from groups.
func (l *layout) index() {
	l.groupOf = make([]int, l.users)
	for i := range l.groupOf {
		l.groupOf[i] = -1
	}
	for g, members := range l.groups {
		for _, u := range members {
			l.groupOf[u] = g
		}
	}
}

// sockets is the most connections the worker holds at once: a channel's offline
// members hold none.
func (l *layout) sockets() int {
	if !l.channel {
		return l.users
	}
	if l.owner >= 0 {
		return l.clients + 1
	}
	return l.clients
}

// connects tells whether user i ever connects (needs a token).
func (l *layout) connects(i int) bool { return !l.channel || i < l.clients || i == l.owner }

func span(from, to int) []int {
	out := make([]int, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// sources are the users whose messages user r must receive.
func (l *layout) sources(r int) []int {
	if l.peer != nil {
		if p := l.peer[r]; p >= 0 {
			return []int{p}
		}
		return nil
	}
	g := l.groupOf[r]
	if g < 0 {
		return nil
	}
	var out []int
	for _, s := range l.senders[g] {
		if s != r {
			out = append(out, s)
		}
	}
	return out
}

// sendsTo is the user (dm) or the group index (group, storm) user i sends to;
// ok is false for a user that does not send.
func (l *layout) sendsTo(i int) (peer, group int, ok bool) {
	if l.peer != nil {
		return l.peer[i], -1, l.peer[i] >= 0
	}
	if g := l.groupOf[i]; g >= 0 {
		for _, s := range l.senders[g] {
			if s == i {
				return -1, g, true
			}
		}
	}
	return -1, -1, false
}

// unit is the number of clients a worker's share is a multiple of: a pair, a
// group, or (storm) a group's clients.
func unit(scenario string, members int) int {
	switch scenario {
	case ScenarioDM:
		return 2
	case ScenarioGroup:
		return members
	case ScenarioStorm:
		return max(1, members-1)
	}
	return 1
}

// split divides total clients over n workers in multiples of u; the last worker
// takes the remainder.
func split(total, n, u int) []int {
	units, rest := total/u, total%u
	out := make([]int, n)
	for i := range n {
		out[i] = u * (units / n)
		if i < units%n {
			out[i] += u
		}
	}
	out[n-1] += rest
	return out
}

// socketsPerUnit is the sockets a unit of clients holds: a storm group also has
// its sender.
func socketsPerUnit(scenario string, u int) int {
	if scenario == ScenarioStorm {
		return u + 1
	}
	return u
}

// autoProcs is the fewest workers that keep every share within perProc sockets.
func autoProcs(scenario string, total, u, perProc int) int {
	perWorker := max(1, perProc/socketsPerUnit(scenario, u)) // units per worker
	units := (total + u - 1) / u
	return max(1, (units+perWorker-1)/perWorker)
}

// checkShares refuses shares over the per-process socket cap.
func checkShares(scenario string, shares []int, u int) error {
	for i, s := range shares {
		sockets := (s/u)*socketsPerUnit(scenario, u) + s%u
		if s%u > 0 && scenario == ScenarioStorm {
			sockets++
		}
		if sockets > MaxConnsPerProc {
			return fmt.Errorf("loadgen: worker %d would hold %d sockets, over %d per process (the open-file cap); use more -procs, or -procs 0 to choose",
				i, sockets, MaxConnsPerProc)
		}
	}
	return nil
}
