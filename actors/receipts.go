package actors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Receipts. A connection remembers the messages it wrote until its device
// acknowledges them; a received turns those it covers into a delivered watermark per
// conversation, told at once to the users it is news to (the senders of those
// messages) and written with the cursor, gathered for Settings.AckSaveDelay. A read
// is checked and written by the store first, then told (to the senders of what it
// newly covers, and to the reader's own devices, which clear their unread marks).
// Nothing else is sent per receipt: in a group, a member's receipt reaches the
// senders of what it covers, not every member.

// maxUnacked bounds the messages a connection remembers as written and not
// acknowledged. Past it the oldest are forgotten: an acknowledgement then makes no
// watermark for a conversation that only they were of (the cumulative watermark of
// any later message of it covers them).
const maxUnacked = 4096

// acks are a connection's acknowledgements: what it wrote and its device has not
// acknowledged, in seq order (what a received makes delivered watermarks of,
// without a store read), and, while saving, what was acknowledged and is gathered
// for one write: the cursor and, per conversation, the highest watermark.
type acks struct {
	sent   []sentEntry
	saving bool // a write is due (Settings.AckSaveDelay)
	cursor uint64
	marks  []persistence.ReceiptMove
	recent *recent // for reads checked here
}

type sentEntry struct {
	seq uint64
	m   *parleypb.Message // shared with every socket it was written to: read only
}

func (u *acks) add(seq uint64, m *parleypb.Message) {
	if n := len(u.sent); n > 0 && seq <= u.sent[n-1].seq {
		return // a page replayed again: its entries are here already, or acknowledged
	}
	if len(u.sent) == maxUnacked {
		u.sent = u.sent[1:]
	}
	u.sent = append(u.sent, sentEntry{seq: seq, m: m})
}

// take removes the entries up to upTo and returns their delivered watermarks: per
// conversation, the highest message id, with the senders (other than user) of its
// messages among them. A channel message in the queue (a mention) makes none:
// channels have no receipts.
func (u *acks) take(upTo uint64, user string) []persistence.ReceiptMove {
	if u == nil {
		return nil
	}
	n := 0
	var out []persistence.ReceiptMove
	for ; n < len(u.sent) && u.sent[n].seq <= upTo; n++ {
		m := u.sent[n].m
		if m.Channel != "" || strings.HasPrefix(m.Conversation, convid.Channel+":") {
			continue
		}
		i := slices.IndexFunc(out, func(r persistence.ReceiptMove) bool { return r.Conversation == m.Conversation })
		if i < 0 {
			out = append(out, persistence.ReceiptMove{Conversation: m.Conversation, User: user, Status: persistence.Delivered})
			i = len(out) - 1
		}
		r := &out[i]
		r.UpTo = max(r.UpTo, m.MessageId)
		if m.From != user && !slices.Contains(r.Senders, m.From) {
			r.Senders = append(r.Senders, m.From)
		}
	}
	clear(u.sent[:n]) // let the messages go
	u.sent = u.sent[n:]
	return out
}

// merge gathers an acknowledgement (or a read checked by the connection) for the
// next write.
func (a *acks) merge(cursor uint64, marks []persistence.ReceiptMove) {
	a.cursor = max(a.cursor, cursor)
	for _, m := range marks {
		i := slices.IndexFunc(a.marks, func(x persistence.ReceiptMove) bool {
			return x.Conversation == m.Conversation && x.Status == m.Status
		})
		if i < 0 {
			a.marks = append(a.marks, persistence.ReceiptMove{Conversation: m.Conversation, User: m.User,
				Status: m.Status, UpTo: m.UpTo})
			continue
		}
		a.marks[i].UpTo = max(a.marks[i].UpTo, m.UpTo)
	}
}

// recentLen is how many unread messages of others in direct conversations a
// connection remembers, for reads.
const recentLen = 32

// recent are the messages of others in direct conversations that a connection
// wrote and its device has not read through it yet, the last recentLen of them: a
// read of one is checked without a store statement (the device was sent it, so
// its user is a member and it is a message of that conversation), told at once
// and written with the cursor. A read of anything else (a group's, one's own
// message, an older one) goes through the store's check. What a read covers is
// forgotten, so a device that has read what it was sent holds nothing.
type recent struct {
	unread []recentMessage
}

type recentMessage struct {
	conversation string
	id           int64
}

func (r *recent) add(conv string, id int64) {
	if len(r.unread) == recentLen {
		r.unread = append(r.unread[:0], r.unread[1:]...)
	}
	r.unread = append(r.unread, recentMessage{conv, id})
}

func (r *recent) has(conv string, id int64) bool {
	return r != nil && slices.Contains(r.unread, recentMessage{conv, id})
}

// read forgets what a read of conv up to id covers, and reports whether
// nothing is left.
func (r *recent) read(conv string, id int64) (empty bool) {
	r.unread = slices.DeleteFunc(r.unread, func(m recentMessage) bool { return m.conversation == conv && m.id <= id })
	return len(r.unread) == 0
}

// receiptsMoved hands receipts to the node's relay; from is the connection they
// came from, which is not told its own read.
type receiptsMoved struct {
	moves []persistence.ReceiptMove
	from  *actor.PID
}

// receiptRelay tells each moved receipt to the user grains it is news to. The store
// calls back on a committer goroutine, which must not resolve grains (a lookup may
// wait on the cluster), and the connection that made the receipt may be gone by
// then (a client acknowledges, then closes): so one actor per node relays them.
//
// It gathers them for Settings.ReceiptTellDelay from the first: what is due to one
// user (and one connection left out) goes in one Notify, which its connections
// write in one write(2), and a member's receipts of one conversation in it become
// the highest of each status, a delivered left out when a read covers it (read
// implies delivered). Under load most receipts are then told with others; with a
// single timer per node, a quiet node pays nothing for it.
type receiptRelay struct {
	deps   *Deps
	marks  map[dueMark]*[2]int64 // the highest delivered and read gathered
	order  []dueMark             // first-due first
	except map[string]*actor.PID // the connections left out, by dueMark.except
	timing bool                  // a tellReceipts is on its way
}

// dueMark is a member's watermarks of one conversation, due to a user's
// connections but the one with id except.
type dueMark struct{ user, except, conversation, member string }

// maxDue bounds the watermarks gathered; past it the relay tells at once.
const maxDue = 10_000

// tellReceipts is the relay's own message: the gathering time is over.
type tellReceipts struct{}

func (r *receiptRelay) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *receiptsMoved:
		r.gather(m)
		delay := r.deps.Settings.ReceiptTellDelay
		switch {
		case delay <= 0 || len(r.order) >= maxDue:
			r.tell(ctx)
		case !r.timing && len(r.order) > 0:
			r.timing = true
			root, self := ctx.ActorSystem().Root, ctx.Self()
			time.AfterFunc(delay, func() { root.Send(self, tellReceipts{}) })
		}
	case tellReceipts:
		r.timing = false
		r.tell(ctx)
	}
}

// gather adds m's receipts to what is gathered: each to the senders of what it
// covers, and a read to the reader's other devices too.
func (r *receiptRelay) gather(m *receiptsMoved) {
	for _, mv := range m.moves {
		for _, s := range mv.Senders {
			r.add(dueMark{user: s, conversation: mv.Conversation, member: mv.User}, mv)
		}
		if mv.Status == persistence.Read { // the reader's other devices
			k := dueMark{user: mv.User, conversation: mv.Conversation, member: mv.User}
			if m.from != nil {
				k.except = m.from.Address + "/" + m.from.Id
				if r.except == nil {
					r.except = make(map[string]*actor.PID)
				}
				r.except[k.except] = m.from
			}
			r.add(k, mv)
		}
	}
}

func (r *receiptRelay) add(k dueMark, mv persistence.ReceiptMove) {
	w := r.marks[k]
	if w == nil {
		if r.marks == nil {
			r.marks = make(map[dueMark]*[2]int64)
		}
		w = new([2]int64)
		r.marks[k] = w
		r.order = append(r.order, k)
	}
	i := 0
	if mv.Status == persistence.Read {
		i = 1
	}
	w[i] = max(w[i], mv.UpTo)
}

// tell sends what is gathered to the user grains, and forgets it.
func (r *receiptRelay) tell(ctx actor.Context) {
	users, ns := r.gathered()
	for i, u := range users {
		r.deps.tell(ctx, u, KindUser, ns[i])
	}
	clear(r.marks)
	clear(r.except)
	clear(r.order)
	r.order = r.order[:0]
}

// gathered is what is gathered, as one Notify per user (and connection left out):
// per member and conversation, a delivered unless a read covers it (read implies
// delivered), then the read.
func (r *receiptRelay) gathered() (users []string, ns []*parleypb.Notify) {
	type to struct{ user, except string }
	at := make(map[to]int)
	for _, k := range r.order {
		t := to{k.user, k.except}
		i, ok := at[t]
		if !ok {
			i = len(ns)
			at[t] = i
			users, ns = append(users, k.user), append(ns, &parleypb.Notify{Except: r.except[k.except]})
		}
		n, w := ns[i], r.marks[k]
		if w[0] > w[1] {
			n.Receipts = append(n.Receipts, &parleypb.Receipt{Conversation: k.conversation, User: k.member,
				Status: persistence.Delivered, UpTo: w[0]})
		}
		if w[1] > 0 {
			n.Receipts = append(n.Receipts, &parleypb.Receipt{Conversation: k.conversation, User: k.member,
				Status: persistence.Read, UpTo: w[1]})
		}
	}
	return users, ns
}

// relay is this node's receipt relay, started at its first use.
type relay struct {
	once sync.Once
	pid  *actor.PID
}

// receipts hands moves to the relay; it may be called from any goroutine. from,
// when set, is the connection they came from.
func (d *Deps) receipts(moves []persistence.ReceiptMove, from *actor.PID) {
	if !slices.ContainsFunc(moves, func(m persistence.ReceiptMove) bool {
		return len(m.Senders) > 0 || m.Status == persistence.Read
	}) {
		return // news to no one: a device acknowledging its user's own messages
	}
	d.relay.once.Do(func() {
		d.relay.pid = d.Cluster.ActorSystem.Root.SpawnPrefix(actor.PropsFromProducer(func() actor.Actor {
			return &receiptRelay{deps: d}
		}), "receipts")
	})
	if d.relay.pid != nil {
		d.Cluster.ActorSystem.Root.Send(d.relay.pid, &receiptsMoved{moves: moves, from: from})
	}
}

// markRead saves a read receipt: for a conversation the user is in, up to a
// message of it that the user has (in a group, one after the user's join). What is
// refused is answered with an error frame and never stored.
func (c *Connection) markRead(ctx actor.Context, r *parleypb.Read) {
	if r.UpTo <= 0 {
		c.writeError("", parleypb.ErrorReason_BAD_REQUEST.Code(), "upTo must be a message id")
		return
	}
	if a := c.acks; a != nil && a.recent.has(r.Conversation, r.UpTo) {
		c.readWritten(ctx, r)
		return
	}
	c.member(ctx, "", r.Conversation, func(floor int64) { c.saveRead(ctx, r, floor) })
}

// readWritten takes a read of a direct conversation's message that this
// connection wrote and its device had not read: told at once to the peer and to
// the user's other devices, and written with the cursor (gathered for
// Settings.AckSaveDelay), where the store keeps the highest.
func (c *Connection) readWritten(ctx actor.Context, r *parleypb.Read) {
	if c.acks.recent.read(r.Conversation, r.UpTo) {
		c.acks.recent = nil
	}
	mv := persistence.ReceiptMove{Conversation: r.Conversation, User: c.user, Status: persistence.Read, UpTo: r.UpTo}
	if id, err := convid.Parse(r.Conversation); err == nil {
		for _, u := range id.Members {
			if u != c.user {
				mv.Senders = []string{u}
			}
		}
	}
	moves := []persistence.ReceiptMove{mv}
	c.deps.receipts(moves, ctx.Self())
	c.gatherAcks(ctx, 0, moves)
}

func (c *Connection) saveRead(ctx actor.Context, r *parleypb.Read, floor int64) {
	root, self, d := ctx.ActorSystem().Root, ctx.Self(), c.deps
	if strings.HasPrefix(r.Conversation, convid.Channel+":") {
		// A channel keeps the member's read position only: no receipts to tell. An
		// id that is no message of the channel, or behind the position, moves nothing.
		c.deps.Store.SaveChannelRead(c.user, r.Conversation, r.UpTo, func(err error) {
			if err != nil {
				root.Send(self, &wake{f: func() {
					c.writeError("", parleypb.ErrorReason_UNAVAILABLE.Code(), "read not saved; send it again")
				}})
			}
		})
		return
	}
	c.deps.Store.SaveRead(c.user, r.Conversation, r.UpTo, floor, func(m *persistence.ReceiptMove, err error) {
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			root.Send(self, &wake{f: func() {
				c.writeError("", parleypb.ErrorReason_NOT_FOUND.Code(),
					fmt.Sprintf("read: %d is no message of %s that you have", r.UpTo, r.Conversation))
			}})
		case err != nil:
			root.Send(self, &wake{f: func() {
				c.writeError("", parleypb.ErrorReason_UNAVAILABLE.Code(), "read not saved; send it again")
			}})
		case m != nil:
			d.receipts([]persistence.ReceiptMove{*m}, self)
		}
	})
}

// historyReceipts are the receipts a newest history page carries: a direct
// conversation's peer's watermarks; a group's "by all" watermarks over the members
// but the caller.
func (c *Connection) historyReceipts(conv string) ([]*parleypb.Receipt, error) {
	cx, cancel := c.deps.timeout()
	defer cancel()
	ws, err := c.deps.Store.Receipts(cx, conv)
	if err != nil {
		return nil, err
	}
	var out []*parleypb.Receipt
	add := func(user string, all bool, status string, upTo int64) {
		if upTo > 0 {
			out = append(out, &parleypb.Receipt{Conversation: conv, User: user, All: all, Status: status, UpTo: upTo})
		}
	}
	if id, _ := convid.Parse(conv); id.Kind == convid.Group {
		delivered, read := persistence.ByAll(ws, c.user)
		add("", true, persistence.Delivered, delivered)
		add("", true, persistence.Read, read)
		return out, nil
	}
	for _, w := range ws {
		if w.User != c.user {
			add(w.User, false, persistence.Delivered, w.Delivered)
			add(w.User, false, persistence.Read, w.Read)
		}
	}
	return out, nil
}
