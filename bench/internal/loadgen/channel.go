package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/proto/parleypb"
)

// The channel scenario: one owner (worker 0's last user) makes a channel of
// Members users, Online of them connect and follow it (the channels frame), and
// the owner posts over its own WebSocket. Each post's text starts with
// "<run>.<n>.<Unix ns of the send>" (base 36), so that a member's worker, in any
// process, times post to delivery by the wall clock and counts post n once per
// member. After the posting the owner posts an end marker (post 0): in order
// behind every post, it tells each member's worker that nothing more is on the
// way. Each worker reports, per post, how many of its members got it; the parent
// holds them against the posts answered sent.

// chanAddBatch is the users one POST /v1/channels/{id}/members adds (the
// server's limits.channelAddBatch default).
const chanAddBatch = 1000

// channelsRequest is the channels frame.
var channelsRequest = &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Channels{Channels: &parleypb.ChannelsRequest{}}}

// channelRun is a worker's side of a channel run.
type channelRun struct {
	baseUnix int64  // the worker's base time as Unix ns: post times are baseUnix + since base
	id       string // the channel's id (worker 0)

	mu  sync.Mutex
	got []uint32 // by post number: this worker's members that got the post

	gaps        atomic.Uint64 // live messages whose prev was not the member's last id
	endSeen     atomic.Uint64 // members that got the end marker
	markerAcked atomic.Bool   // the end marker is answered sent (worker 0)
	noEnd       uint64        // members still without the end marker when the drain ended
}

// count notes a member's first delivery of post n.
func (r *channelRun) count(n uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n >= uint64(len(r.got)) {
		grown := make([]uint32, max(n+1, 2*uint64(len(r.got))))
		copy(grown, r.got)
		r.got = grown
	}
	r.got[n]++
}

// postText is the text of post n sent at (since the worker's base).
func (w *worker) postText(n uint64, at time.Duration) string {
	return w.cfg.RunID + "." + strconv.FormatUint(n, 36) + "." + strconv.FormatInt(w.ch.baseUnix+int64(at), 36) +
		" loadgen channel post"
}

// parsePost reads the post number and its send time (Unix ns) from a post's
// text as sent on the wire; ok is false for a text of another run.
func (w *worker) parsePost(text []byte) (n uint64, sentUnix int64, ok bool) {
	for i, c := range text {
		if c == ' ' {
			text = text[:i]
			break
		}
	}
	n, t, ok := w.parseID(text)
	return n, int64(t), ok
}

// channelOf is what loadgen reads of a channel state.
type channelOf struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Last string `json:"lastMessageId"`
}

// channelInfo is GET /v1/channels/{id}'s channel.
type channelInfo struct {
	ID          string `json:"id"`
	Mode        string `json:"mode"`
	MemberCount int    `json:"memberCount"`
}

// findChannel looks the run's channel up among the owner's channels: its id
// ("" if there is none yet) and member count.
func (w *worker) findChannel(ctx context.Context, url, token string) (id string, members int, err error) {
	var list struct {
		Channels []channelOf `json:"channels"`
	}
	if err := w.rest(ctx, http.MethodGet, url+"/v1/channels", token, nil, &list); err != nil {
		return "", 0, fmt.Errorf("listing the owner's channels: %w", err)
	}
	for _, c := range list.Channels {
		if c.Name == w.cfg.ChannelName {
			info, err := w.getChannel(ctx, url, token, c.ID)
			return c.ID, info.MemberCount, err
		}
	}
	return "", 0, nil
}

func (w *worker) getChannel(ctx context.Context, url, token, id string) (channelInfo, error) {
	var out struct {
		Channel channelInfo `json:"channel"`
	}
	if err := w.rest(ctx, http.MethodGet, url+"/v1/channels/"+id, token, nil, &out); err != nil {
		return channelInfo{}, fmt.Errorf("reading channel %s: %w", id, err)
	}
	return out.Channel, nil
}

// channelReady tells whether the run's channel exists already with every
// member (an earlier run with these users made it): then every user has an
// account and registration is skipped. It needs minted tokens (the owner's).
func (w *worker) channelReady(ctx context.Context, signer *auth.Signer) bool {
	token, err := signer.Issue(w.cfg.Owner, deviceID)
	if err != nil {
		return false
	}
	id, members, err := w.findChannel(ctx, w.cfg.URLs[0], token)
	return err == nil && id != "" && members == w.cfg.Members
}

// channelMembers (worker 0; the others have nothing to do) finds or makes the
// run's channel and adds every member, chanAddBatch per call, a few calls at a
// time (adding a member again is no error); the channel must then have exactly
// Members members.
func (w *worker) channelMembers(ctx context.Context) error {
	o := w.lay.owner
	if o < 0 {
		return nil
	}
	url, token := w.url(o), w.tokens[o]
	id, members, err := w.findChannel(ctx, url, token)
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if id == "" {
		var out struct {
			Channel channelInfo `json:"channel"`
		}
		err := w.rest(ctx, http.MethodPost, url+"/v1/channels", token,
			map[string]any{"name": w.cfg.ChannelName, "mode": w.cfg.ChannelMode}, &out)
		if err != nil {
			return fmt.Errorf("loadgen: creating the channel: %w", err)
		}
		id, members = out.Channel.ID, out.Channel.MemberCount
	}
	w.ch.id = id
	if members == w.cfg.Members {
		return nil
	}
	batches := w.memberBatches()
	failed := w.forEach(ctx, span(0, len(batches)), min(4, w.cfg.RegisterPar), func(ctx context.Context, b int) error {
		err := w.rest(ctx, http.MethodPost, url+"/v1/channels/"+id+"/members", token, map[string][]string{"users": batches[b]}, nil)
		if err != nil {
			return fmt.Errorf("adding members %d..%d: %w", b*chanAddBatch, b*chanAddBatch+len(batches[b])-1, err)
		}
		return nil
	})
	w.setupErrors.Add(int64(failed))
	if failed > 0 {
		return fmt.Errorf("loadgen: %d of %d member batches could not be added: %s", failed, len(batches), w.firstErr)
	}
	info, err := w.getChannel(ctx, url, token, id)
	if err == nil && info.MemberCount != w.cfg.Members {
		err = fmt.Errorf("channel %s has %d members, want %d (the owner included)", id, info.MemberCount, w.cfg.Members)
	}
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	return ctx.Err()
}

// memberBatches are every member's name but the owner's, chanAddBatch a batch.
func (w *worker) memberBatches() [][]string {
	var all [][]string
	var b []string
	for k, n := range w.cfg.ChannelUsers {
		for i := range n {
			b = append(b, fmt.Sprintf("%s-%d-%d", w.cfg.UsersPrefix, k, i))
			if len(b) == chanAddBatch {
				all, b = append(all, b), nil
			}
		}
	}
	if len(b) > 0 {
		all = append(all, b)
	}
	return all
}

// channelConnect connects the owner (worker 0), then the online members, each
// following the channel (a channels frame whose answer lists it). The REST
// calls are over: their idle connections are closed first, so that they take
// none of the node's listen.maxConns from the sockets.
func (w *worker) channelConnect(ctx context.Context) error {
	w.http.CloseIdleConnections()
	if o := w.lay.owner; o >= 0 && w.connect(ctx, []int{o}, nil) < 1 {
		return fmt.Errorf("loadgen: the channel's owner could not connect: %s", w.firstErr)
	}
	up := w.connect(ctx, span(0, w.lay.clients), func(c *lconn) { c.follow = make(chan struct{}) })
	w.setupUp.Store(int64(up))
	return ctx.Err()
}

// followChannel sends the channels frame and waits for its answer, which must
// list the run's channel (dial, once synced).
func (c *lconn) followChannel(ctx context.Context) error {
	if err := c.write(channelsRequest); err != nil {
		return c.abort(err)
	}
	select {
	case <-c.follow:
	case <-c.readerDone:
		return c.abort(errors.New("connection ended before the channels answer"))
	case <-ctx.Done():
		return c.abort(fmt.Errorf("waiting for the channels answer: %w", ctx.Err()))
	}
	if !c.listed {
		return c.abort(fmt.Errorf("the channels answer does not list %q", c.w.cfg.ChannelName))
	}
	return nil
}

// channelsFrame takes the answer to the channels frame (poller goroutine): the
// run's channel in it, with its last message id, the prev of the next post.
func (c *lconn) channelsFrame(f *inFrame) {
	states, err := channelStates(f)
	if err != nil {
		c.w.fail("%s: the channels answer: %v", c.user, err)
	}
	for _, s := range states {
		if s.Name == c.w.cfg.ChannelName {
			last, err := strconv.ParseUint(s.Last, 10, 64)
			c.listed, c.lastMsg = err == nil, last
		}
	}
	if c.follow != nil {
		c.followOnce.Do(func() { close(c.follow) })
	}
}

// channelStates reads the channels of an answer, from either decoder.
func channelStates(f *inFrame) ([]channelOf, error) {
	if f.states != nil || f.raw == nil {
		out := make([]channelOf, len(f.states))
		for i, s := range f.states {
			out[i] = channelOf{ID: s.GetId(), Name: s.GetName(), Last: strconv.FormatInt(s.GetLastMessageId(), 10)}
		}
		return out, nil
	}
	var out []channelOf
	return out, json.Unmarshal(f.raw, &out)
}

// channelMessage takes a live channel message (poller goroutine): a post of
// this run is timed and counted once per member; the end marker (post 0) is
// counted apart. Each one's prev must be the last id the member has.
func (c *lconn) channelMessage(m *inFrame) {
	w := c.w
	n, sentUnix, ok := w.parsePost(m.body)
	if !ok {
		return // not a post of this run
	}
	since := c.now()
	c.mu.Lock()
	dup := c.posts.set(n)
	gap := !dup && m.prev != c.lastMsg
	if !dup {
		c.lastMsg = m.msgID
	}
	c.mu.Unlock()
	switch {
	case dup:
		w.dups.Add(1)
		return
	case gap:
		w.ch.gaps.Add(1)
	}
	if n == 0 {
		w.ch.endSeen.Add(1)
		return
	}
	w.delivHist.Record(time.Duration(w.ch.baseUnix + int64(since) - sentUnix))
	w.delivered.Add(1)
	raise(&w.lastActivity, uint64(since))
	w.ch.count(n)
}

// armOwner sets the owner (when in this worker) to post to the channel, paced
// by rate tokens or a window.
func (w *worker) armOwner(paced bool) []*lconn {
	o := w.lay.owner
	if o < 0 || w.conns[o] == nil {
		return nil
	}
	c := w.conns[o]
	c.channel = w.ch.id
	if paced {
		c.tokens = make(chan struct{}, 16)
	} else {
		c.window = make(chan struct{}, w.cfg.Window)
	}
	return []*lconn{c}
}

// channelDrain ends a channel's traffic, within twice Drain: the owner's worker
// waits (at most Drain) for every post to be answered, then posts the end
// marker and waits for its answer; every worker waits until each of its
// members has the marker, which comes behind every post.
func (w *worker) channelDrain(ctx context.Context) {
	drain := time.Duration(w.cfg.Drain)
	deadline := time.Now().Add(2 * drain)
	if o := w.lay.owner; o >= 0 && w.conns[o] != nil {
		waitUntil(ctx, drain, func() bool { return w.acked.Load()+w.errFrames.Load() >= w.sent.Load() })
		if w.conns[o].sendMarker() {
			waitUntil(ctx, time.Until(deadline), w.ch.markerAcked.Load)
		}
	}
	followers := w.followers()
	waitUntil(ctx, time.Until(deadline), func() bool { return w.ch.endSeen.Load() >= uint64(followers) })
	w.ch.noEnd = uint64(followers) - min(uint64(followers), w.ch.endSeen.Load())
}

// sendMarker posts the end marker, post 0.
func (c *lconn) sendMarker() bool {
	at := c.now()
	err := c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
		Id: c.w.clientID(0, at), Channel: c.channel, Text: c.w.postText(0, at)}}})
	if err != nil {
		c.w.werrs.Add(1)
		c.w.fail("%s: writing the end marker: %v", c.user, err)
		return false
	}
	return true
}

// followers is the members of this worker that follow the channel now.
func (w *worker) followers() int {
	n := 0
	for _, c := range w.conns[:w.lay.clients] {
		if c != nil && !c.dead.Load() {
			n++
		}
	}
	return n
}

// channelResult adds a channel worker's counts to its result.
func (w *worker) channelResult(res *WorkerResult) {
	w.ch.mu.Lock()
	res.ChannelGot = append([]uint32(nil), w.ch.got...)
	w.ch.mu.Unlock()
	for _, c := range w.conns[:w.lay.clients] {
		if c != nil {
			res.Followers++
		}
	}
	res.PrevGaps, res.NoEndMarker, res.EndSeen = w.ch.gaps.Load(), w.ch.noEnd, w.ch.endSeen.Load()
	if o := w.lay.owner; o >= 0 && w.conns[o] != nil {
		acked := w.conns[o].ackedSet()
		res.ChannelAcked, res.ChannelID, res.MarkerAcked = &acked, w.ch.id, w.ch.markerAcked.Load()
	}
}
