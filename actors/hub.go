package actors

import (
	"runtime"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/internal/metrics"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// FeedSocket is what a ChannelHub writes to: a socket that takes frames made once
// for every socket of its encoding (implemented by the gateway's socket).
type FeedSocket interface {
	WriteFeed(f *wire.Feed) error
	// Cork holds the frames written until Uncork, which writes them together.
	Cork()
	Uncork()
}

// ChannelHub is a node's live feed of channel messages. Its subscribers are the
// node's sockets that asked for their channels (the channels frame); a channel's
// grain publishes each commit once to every node's relay (ChannelRelayName), and the
// hub writes it to the channel's local subscribers: one encoding per message per
// node, one write per socket, no actor message per member. Fan-out runs on one
// goroutine per core (a socket always on the same one, so its frames stay in order),
// never on the relay's. Safe for concurrent use.
type ChannelHub struct {
	mu     sync.Mutex
	chans  map[string]*hubChannel       // conversation id -> its subscribers here
	users  map[string]map[*FeedSub]bool // user -> its subscribed sockets here
	shards []chan hubJob
	met    *metrics.Metrics
}

// FeedSub is one socket's subscription (a connection holds it until it closes).
type FeedSub struct {
	sock  FeedSocket
	user  string
	shard int
	chans map[string]bool // the channels it is in
	gone  map[string]bool // channels the user left since it subscribed (a late Subscribe must not add them back)
}

type hubChannel struct {
	subs    map[*FeedSub]bool
	byShard [][]*FeedSub // the subscribers by shard; nil when stale
}

type hubJob struct {
	feed *wire.Feed
	subs []*FeedSub
}

// hubQueue bounds the publishes a fan-out goroutine has waiting; past it the relay
// waits (and the grains' sends queue in its mailbox).
const hubQueue = 1024

// NewChannelHub starts a hub with a fan-out goroutine per core; they run for the
// life of the process.
func NewChannelHub(met *metrics.Metrics) *ChannelHub {
	h := &ChannelHub{chans: map[string]*hubChannel{}, users: map[string]map[*FeedSub]bool{}, met: met}
	for range runtime.GOMAXPROCS(0) {
		jobs := make(chan hubJob, hubQueue)
		h.shards = append(h.shards, jobs)
		go fanOut(jobs)
	}
	return h
}

// maxCoalesce bounds the publishes one pass of a fan-out goroutine takes.
const maxCoalesce = 64

// fanOut writes the publishes of its shard in order. When it is behind, the
// publishes waiting for one channel go to each socket as one write (corked): the
// cost per delivery falls as the rate rises, instead of the queue growing.
func fanOut(jobs <-chan hubJob) {
	var batch []hubJob
	for j := range jobs {
		batch = append(batch[:0], j)
	more:
		for len(batch) < maxCoalesce {
			select {
			case k := <-jobs:
				batch = append(batch, k)
			default:
				break more
			}
		}
		for i := 0; i < len(batch); {
			k := i + 1
			for k < len(batch) && sameSubs(batch[k].subs, batch[i].subs) {
				k++
			}
			writeRun(batch[i:k])
			i = k
		}
		clear(batch) // let the feeds go
	}
}

// sameSubs reports whether two publishes go to one subscriber list (one channel's
// snapshot, unchanged between them).
func sameSubs(a, b []*FeedSub) bool { return len(a) == len(b) && len(a) > 0 && &a[0] == &b[0] }

// writeRun writes publishes of one subscriber list, in order, one write per socket.
func writeRun(run []hubJob) {
	if len(run) == 1 {
		for _, s := range run[0].subs {
			_ = s.sock.WriteFeed(run[0].feed) // a socket that fails closes itself
		}
		return
	}
	for _, s := range run[0].subs {
		s.sock.Cork()
		for _, j := range run {
			_ = s.sock.WriteFeed(j.feed)
		}
		s.sock.Uncork()
	}
}

// Register adds a socket of user, in no channel yet: from now on the user's joins
// and leaves reach it (Members), so that what it reads next (its channels) and
// what it hears cannot miss one another.
func (h *ChannelHub) Register(user string, sock FeedSocket, shard int) *FeedSub {
	s := &FeedSub{sock: sock, user: user, shard: shard % len(h.shards), chans: map[string]bool{}}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users[user] == nil {
		h.users[user] = map[*FeedSub]bool{}
	}
	h.users[user][s] = true
	return s
}

// Subscribe puts s in the channels convs (the store's list of the user's channels,
// read after Register), but those the user left since.
func (h *ChannelHub) Subscribe(s *FeedSub, convs []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.users[s.user][s] == false {
		return // left already
	}
	for _, conv := range convs {
		if !s.gone[conv] {
			h.add(s, conv)
		}
	}
}

func (h *ChannelHub) add(s *FeedSub, conv string) {
	c := h.chans[conv]
	if c == nil {
		c = &hubChannel{subs: map[*FeedSub]bool{}}
		h.chans[conv] = c
	}
	if !c.subs[s] {
		c.subs[s], c.byShard = true, nil
		s.chans[conv] = true
	}
	delete(s.gone, conv)
}

func (h *ChannelHub) remove(s *FeedSub, conv string) {
	if c := h.chans[conv]; c != nil && c.subs[s] {
		delete(c.subs, s)
		c.byShard = nil
		if len(c.subs) == 0 {
			delete(h.chans, conv)
		}
	}
	delete(s.chans, conv)
}

// Leave ends s (its socket closed).
func (h *ChannelHub) Leave(s *FeedSub) {
	if s == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for conv := range s.chans {
		h.remove(s, conv)
	}
	if subs := h.users[s.user]; subs != nil {
		delete(subs, s)
		if len(subs) == 0 {
			delete(h.users, s.user)
		}
	}
}

// Members applies a channel's joins and leaves to the sockets of those users here.
func (h *ChannelHub) Members(conv string, added, removed []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range added {
		for s := range h.users[u] {
			h.add(s, conv)
		}
	}
	for _, u := range removed {
		for s := range h.users[u] {
			h.remove(s, conv)
			if s.gone == nil {
				s.gone = map[string]bool{}
			}
			s.gone[conv] = true
		}
	}
}

// Publish writes msgs (a channel's commit, in id order) to the channel's
// subscribers here. It returns the sockets written to.
func (h *ChannelHub) Publish(conv string, msgs []*parleypb.Message) int {
	h.mu.Lock()
	c := h.chans[conv]
	if c == nil {
		h.mu.Unlock()
		return 0
	}
	if c.byShard == nil {
		c.byShard = make([][]*FeedSub, len(h.shards))
		for s := range c.subs {
			c.byShard[s.shard] = append(c.byShard[s.shard], s)
		}
	}
	byShard, n := c.byShard, len(c.subs)
	h.mu.Unlock()
	feed := wire.NewFeed(msgs)
	for i, subs := range byShard {
		if len(subs) > 0 {
			h.shards[i] <- hubJob{feed: feed, subs: subs}
		}
	}
	return n
}

// Subscribers is the number of sockets subscribed to conv here.
func (h *ChannelHub) Subscribers(conv string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c := h.chans[conv]; c != nil {
		return len(c.subs)
	}
	return 0
}

// ChannelRelayName is the name of every node's channel relay actor: a channel grain
// sends its commits and membership changes to PID{member address, this name} on
// each member.
const ChannelRelayName = "parley-channel-relay"

// channelRelay hands what channel grains send to its node's hub. It is one actor,
// so what one grain sends reaches the hub in the order it was sent.
type channelRelay struct{ hub *ChannelHub }

func (r *channelRelay) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *parleypb.ChannelPublish:
		r.hub.Publish(m.Channel, m.Messages)
	case *parleypb.ChannelMembers:
		r.hub.Members(m.Channel, m.Added, m.Removed)
	}
}

// StartChannelRelay spawns this node's channel relay for hub.
func StartChannelRelay(system *actor.ActorSystem, hub *ChannelHub) error {
	props := actor.PropsFromProducer(func() actor.Actor { return &channelRelay{hub: hub} })
	_, err := system.Root.SpawnNamed(props, ChannelRelayName)
	return err
}
