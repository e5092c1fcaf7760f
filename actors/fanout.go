package actors

import (
	"context"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/parleychat/parley/persistence"
	"github.com/parleychat/parley/proto/parleypb"
)

// Fan-out of a conversation grain: each committed message goes into every member's
// sync queue, one enqueue per member at a time and in id order, until the member's
// user grain acknowledges it; progress is snapshotted, and the outbox row is cleared
// once every member has everything.

// fanout sends each member whose queue is behind the messages it lacks, one enqueue
// per member at a time so that each queue receives the conversation in order. It runs
// after each commit (and on wakes and retries); an acknowledgement continues only its
// own member, so a message costs O(members), not O(members²).
func (c *Conversation) fanout(ctx actor.Context) {
	if c.broken || c.deps.Settings.HoldFanout {
		return
	}
	c.count()
	for _, member := range c.members {
		c.fanoutTo(ctx, member)
	}
}

// fanoutTo sends member what it lacks, unless an enqueue to it is under way.
func (c *Conversation) fanoutTo(ctx actor.Context, member string) {
	if c.broken || c.deps.Settings.HoldFanout || c.sending[member] || c.delivered[member] >= c.committed {
		return
	}
	msgs, err := c.after(c.delivered[member])
	if err != nil {
		c.deps.Log.Warn("reading fan-out", slog.String("conversation", c.id), slog.Any("error", err))
		c.retryLater(ctx)
		return
	}
	if len(msgs) == 0 {
		return
	}
	c.sending[member] = true
	req := &parleypb.EnqueueRequest{Conversation: c.id, Messages: msgs}
	c.deps.ask(ctx, member, KindUser, req, 2, func(res any, err error) {
		if !c.isMember(member) {
			return // removed meanwhile
		}
		c.sending[member] = false
		r, ok := res.(*parleypb.EnqueueResponse)
		if err != nil || !ok || r.Error != nil {
			c.deps.Log.Debug("enqueue failed", slog.String("conversation", c.id), slog.String("user_id", member), slog.Any("error", err))
			c.retryLater(ctx)
			return
		}
		if prev := c.delivered[member]; r.UpTo > prev {
			c.delivered[member] = r.UpTo
			c.acked(ctx, prev, r.UpTo)
		}
		c.fanoutTo(ctx, member)
	})
}

// after returns committed messages with ids above id, from the tail or the store.
func (c *Conversation) after(id int64) ([]*parleypb.Message, error) {
	if id >= c.tailBase {
		out := make([]*parleypb.Message, 0, min(len(c.tail), fanoutBatch))
		for _, m := range c.tail {
			if m.MessageId > id && len(out) < fanoutBatch {
				out = append(out, m)
			}
		}
		return firstChunk(out), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.deps.Settings.RequestTimeout)
	defer cancel()
	msgs, err := c.deps.Store.ReadConversation(ctx, c.id, id, fanoutBatch)
	return firstChunk(msgs), err
}

// firstChunk is the longest prefix of msgs within batchBytes of text (at least one).
func firstChunk(msgs []*parleypb.Message) []*parleypb.Message {
	size := 0
	for i, m := range msgs {
		size += len(m.Text) + 64
		if size > batchBytes && i > 0 {
			return msgs[:i]
		}
	}
	return msgs
}

func (c *Conversation) retryLater(ctx actor.Context) {
	if c.retrying {
		return
	}
	c.retrying = true
	self, root := ctx.Self(), ctx.ActorSystem().Root
	time.AfterFunc(retryFanout, func() { root.Send(self, &fanoutRetry{}) })
}

// allDelivered counts afresh whether every member has every committed message.
func (c *Conversation) allDelivered() bool {
	c.count()
	return c.behind == 0
}

// count recomputes, in one pass over the members, how many lack messages, and trims
// the tail to what the furthest-behind member still lacks.
func (c *Conversation) count() {
	low, behind := c.committed, 0
	for _, m := range c.members {
		d := c.delivered[m]
		low = min(low, d)
		if d < c.committed {
			behind++
		}
	}
	c.behind = behind
	n := 0
	for n < len(c.tail) && c.tail[n].MessageId <= low {
		n++
	}
	if n > 0 {
		c.tailBase = c.tail[n-1].MessageId
		c.tail = append(c.tail[:0:0], c.tail[n:]...)
	}
}

// acked notes that a member's queue moved from prev to upTo: when the last member
// lacking messages has them all, the tail goes and the outbox row is cleared. The
// delivery progress is snapshotted about every SnapshotEvery messages' worth of
// acknowledgements (SnapshotEvery × members).
func (c *Conversation) acked(ctx actor.Context, prev, upTo int64) {
	if prev < c.committed && upTo >= c.committed {
		c.behind--
	}
	if c.behind <= 0 {
		c.count()
		if c.behind == 0 {
			c.clearOutbox()
		}
	}
	c.acks++
	if c.acks >= c.deps.Settings.SnapshotEvery*max(1, len(c.members)) {
		c.saveSnapshot(ctx, false)
	}
}

// clearOutbox drops the conversation's outbox row up to the last committed message.
// A row left behind only causes a redundant wake, which clears it.
func (c *Conversation) clearOutbox() {
	conv, upTo, store, timeout := c.id, c.committed, c.deps.Store, c.deps.Settings.RequestTimeout
	go func() {
		cx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = store.ClearOutbox(cx, conv, upTo)
	}()
}

// saveSnapshot stores the delivery progress; wait makes it synchronous (on stop).
func (c *Conversation) saveSnapshot(_ actor.Context, wait bool) {
	if c.id == "" || c.broken {
		return
	}
	c.acks = 0
	snap := &parleypb.ConversationSnapshot{Version: c.version, LastMessageId: c.committed, Delivered: map[string]int64{}}
	for m, id := range c.delivered {
		snap.Delivered[m] = id
	}
	state, err := proto.Marshal(snap)
	if err != nil {
		return
	}
	conv, store, timeout := c.id, c.deps.Store, c.deps.Settings.RequestTimeout
	save := func() {
		cx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		_ = store.SaveSnapshot(cx, persistence.ConversationStream(conv), snap.Version, state)
	}
	if wait {
		save()
		return
	}
	go save()
}
