package soak

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/proto/parleypb"
)

// Verification, once every session has closed: each user's whole sync queue is
// read with sync from 0 on a fresh connection of another device, and held
// against the messages acknowledged to their senders. Every acknowledged message
// must be in the queue of every member of its conversation (its sender's
// included) exactly once, and the queue's seqs must run 1, 2, 3, … without a gap.

// msgKey names a send: its sender and client id (the server's dedupe key within a
// conversation; each soak user sends to one conversation).
type msgKey struct{ from, clientID string }

// ackedMsg is a send answered sent.
type ackedMsg struct {
	key msgKey
	id  int64
}

// entry is one message of a queue as sync returned it.
type entry struct {
	seq  uint64
	id   int64
	key  msgKey
	conv string
}

// queueCheck is one queue held against what it must hold.
type queueCheck struct {
	Entries    int // entries read
	Expected   int // acknowledged messages the queue must hold
	Verified   int // of them, held exactly once
	Missing    int // of them, not held
	Duplicated int // extra copies: an expected message held more than once, or an acknowledged send held under another message id
	Unacked    int // entries of sends never answered sent (committed, answer lost at the end): allowed, counted
	Foreign    int // entries that are none of the above
	SeqGaps    int // places where seq does not follow its predecessor by one (the first must be 1)
	Reread     int // entries whose seq is not above the one before (sync gave them again, or out of order)

	MissingIDs, DuplicatedIDs []int64 // the first few, for the report
}

const maxIDs = 10

// checkQueue holds entries (in the order sync returned them) against want, the acknowledged
// messages of the queue's conversations; unacked are the sends of those
// conversations never answered.
func checkQueue(entries []entry, want []ackedMsg, unacked map[msgKey]bool) queueCheck {
	q := queueCheck{Entries: len(entries), Expected: len(want)}
	byID := make(map[int64]int, len(want)) // message id -> copies held
	byKey := make(map[msgKey]int64, len(want))
	for _, m := range want {
		byID[m.id] = 0
		byKey[m.key] = m.id
	}
	seq := uint64(0)
	for _, e := range entries {
		if e.seq <= seq { // read again, or out of order: not another copy in the queue
			q.Reread++
			continue
		}
		if e.seq != seq+1 {
			q.SeqGaps++
		}
		seq = e.seq
		if n, ok := byID[e.id]; ok {
			byID[e.id] = n + 1
			continue
		}
		if id, ok := byKey[e.key]; ok && id != e.id { // one send, a second message
			q.Duplicated++
			q.DuplicatedIDs = appendID(q.DuplicatedIDs, e.id)
			continue
		}
		if unacked[e.key] {
			q.Unacked++
			continue
		}
		q.Foreign++
	}
	for _, m := range want {
		switch n := byID[m.id]; {
		case n == 0:
			q.Missing++
			q.MissingIDs = appendID(q.MissingIDs, m.id)
		case n == 1:
			q.Verified++
		default:
			q.Duplicated += n - 1
			q.DuplicatedIDs = appendID(q.DuplicatedIDs, m.id)
		}
	}
	return q
}

func appendID(ids []int64, id int64) []int64 {
	if len(ids) < maxIDs {
		ids = append(ids, id)
	}
	return ids
}

// add sums o into q.
func (q *queueCheck) add(o queueCheck) {
	q.Entries += o.Entries
	q.Expected += o.Expected
	q.Verified += o.Verified
	q.Missing += o.Missing
	q.Duplicated += o.Duplicated
	q.Unacked += o.Unacked
	q.Foreign += o.Foreign
	q.SeqGaps += o.SeqGaps
	q.Reread += o.Reread
}

// expectations groups the sessions' sends by conversation.
type expectations struct {
	acked   map[string][]ackedMsg
	unacked map[string]map[msgKey]bool
}

func (r *run) expectations() expectations {
	x := expectations{acked: map[string][]ackedMsg{}, unacked: map[string]map[msgKey]bool{}}
	for _, s := range r.sessions {
		s.mu.Lock()
		for _, rec := range s.sends {
			k := msgKey{s.u.name, rec.id}
			if rec.msgID != 0 {
				x.acked[rec.conv] = append(x.acked[rec.conv], ackedMsg{key: k, id: rec.msgID})
				continue
			}
			if x.unacked[rec.conv] == nil {
				x.unacked[rec.conv] = map[msgKey]bool{}
			}
			x.unacked[rec.conv][k] = true
		}
		s.mu.Unlock()
	}
	return x
}

// forUser is what u's queue must hold.
func (x expectations) forUser(u *user) ([]ackedMsg, map[msgKey]bool) {
	var want []ackedMsg
	unacked := map[msgKey]bool{}
	for _, c := range u.convs {
		want = append(want, x.acked[c]...)
		for k := range x.unacked[c] {
			unacked[k] = true
		}
	}
	return want, unacked
}

// verify reads every user's queue (VerifyPar at a time, on the nodes in turn)
// and checks it.
func (r *run) verify(ctx context.Context) (queueCheck, []string, error) {
	x := r.expectations()
	var (
		mu       sync.Mutex
		total    queueCheck
		problems []string
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, r.cfg.VerifyPar)
	for i, u := range r.users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			entries, err := r.readQueue(ctx, u, i%r.cfg.Nodes)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				firstErr = errors.Join(firstErr, fmt.Errorf("reading the queue of %s: %w", u.name, err))
				return
			}
			want, unacked := x.forUser(u)
			q := checkQueue(entries, want, unacked)
			total.add(q)
			if q.Missing+q.Duplicated+q.Foreign+q.SeqGaps > 0 && len(problems) < maxExamples {
				problems = append(problems, fmt.Sprintf("%s (%s): %d entries, %d expected, missing %d %v, duplicated %d %v, foreign %d, seq gaps %d",
					u.name, u.kind, q.Entries, q.Expected, q.Missing, q.MissingIDs, q.Duplicated, q.DuplicatedIDs, q.Foreign, q.SeqGaps))
			}
		}()
	}
	wg.Wait()
	return total, problems, firstErr
}

// verifyDevice is the device whose fresh connections read the queues.
const verifyDevice = "soakverify"

// readQueue reads u's whole queue from seq 0, trying up to 3 times (other nodes
// after the first).
func (r *run) readQueue(ctx context.Context, u *user, node int) ([]entry, error) {
	token, err := r.signer.Issue(u.name, verifyDevice)
	if err != nil {
		return nil, err
	}
	var errs []error
	for try := range 3 {
		entries, err := r.readQueueOnce(ctx, r.cfg.nodeURL((node+try)%r.cfg.Nodes), token, u)
		if err == nil {
			return entries, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	return nil, errors.Join(errs...)
}

func (r *run) readQueueOnce(ctx context.Context, base, token string, u *user) ([]entry, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	c, err := client.Dial(dctx, base, token, u.enc)
	cancel()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var entries []entry
	after := uint64(0)
	if err := c.Write(syncFrame(after)); err != nil {
		return nil, err
	}
	for {
		f, err := c.Read(30 * time.Second)
		if err != nil {
			return nil, err
		}
		switch b := f.Body.(type) {
		case *parleypb.ServerFrame_Message:
			m := b.Message
			entries = append(entries, entry{seq: m.Seq, id: m.MessageId, key: msgKey{m.From, m.ClientId}, conv: m.Conversation})
		case *parleypb.ServerFrame_Synced:
			if !b.Synced.More {
				return entries, nil
			}
			after = b.Synced.UpTo
			if err := c.Write(syncFrame(after)); err != nil {
				return nil, err
			}
		case *parleypb.ServerFrame_Error:
			if b.Error.Code != "unavailable" {
				return nil, fmt.Errorf("sync answered %s: %s", b.Error.Code, b.Error.Message)
			}
			time.Sleep(time.Second) // the read failed: ask again from where it was
			if err := c.Write(syncFrame(after)); err != nil {
				return nil, err
			}
		}
	}
}
