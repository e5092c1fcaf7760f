package soak

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/proto/parleypb"
)

// The reader of a session's connection: messages move the position, synced
// pages are followed, sent and error frames settle sends.

// read reads c until it fails, and hands the error to done.
func (s *session) read(c *client.Conn, done chan<- error) {
	for {
		f, err := c.Read(readTimeout)
		if err != nil {
			done <- err
			return
		}
		s.handle(c, f)
	}
}

func (s *session) handle(c *client.Conn, f *parleypb.ServerFrame) {
	switch b := f.Body.(type) {
	case *parleypb.ServerFrame_Message:
		s.message(b.Message)
	case *parleypb.ServerFrame_Synced:
		s.synced(c, b.Synced)
	case *parleypb.ServerFrame_Sent:
		s.sent(b.Sent)
	case *parleypb.ServerFrame_Error:
		s.errorFrame(b.Error)
	}
}

func (s *session) message(m *parleypb.Message) {
	now := time.Now()
	s.mu.Lock()
	fresh := m.Seq > s.pos
	if fresh {
		s.pos = m.Seq
	}
	slow := s.u.kind == kindSlow && s.live && s.r.cfg.slowSpell(now.Sub(s.liveAt))
	s.mu.Unlock()
	if !fresh {
		s.r.ctr.seqRepeats.Add(1)
		return
	}
	s.r.ctr.delivered.Add(1)
	if s.u.kind != kindSlow {
		if at, ok := sentAt(m.Text); ok {
			s.r.delivery.Record(now.Sub(at))
		}
	}
	if slow {
		time.Sleep(s.r.cfg.SlowDelay)
	}
}

func (s *session) synced(c *client.Conn, sy *parleypb.Synced) {
	s.mu.Lock()
	if sy.More {
		s.pos = max(s.pos, sy.UpTo)
	} else {
		if sy.UpTo < s.pos {
			s.r.ctr.queueBehind.Add(1) // the queue ends before what this user read
		}
		s.pos = max(s.pos, sy.UpTo)
		if !s.live {
			s.live, s.liveAt = true, time.Now()
		}
	}
	after := s.pos
	s.mu.Unlock()
	if sy.More && c.Write(syncFrame(after)) != nil {
		c.Reset()
	}
}

func (s *session) sent(st *parleypb.Sent) {
	now := time.Now()
	s.mu.Lock()
	rec, ok := s.pending[st.Id]
	if ok {
		delete(s.pending, st.Id)
		rec.msgID = st.MessageId
	} else {
		rec = s.find(st.Id)
	}
	s.mu.Unlock()
	switch {
	case rec == nil:
		s.r.ctr.note(&s.r.ctr.unknownSent, "%s: sent for an id never sent: %s", s.u.name, st.Id)
		return
	case rec.conv != st.Conversation:
		s.r.ctr.note(&s.r.ctr.convMismatch, "%s: sent %s names %s, want %s", s.u.name, st.Id, st.Conversation, rec.conv)
	}
	if !ok { // a repeat answered again: it must name the same message
		s.r.ctr.repeatedSent.Add(1)
		if rec.msgID != st.MessageId {
			s.r.ctr.note(&s.r.ctr.dedupeMismatch, "%s: %s answered as message %d, then as %d", s.u.name, st.Id,
				rec.msgID, st.MessageId)
		}
		return
	}
	s.r.ctr.acked.Add(1)
	s.r.ack.Record(now.Sub(rec.at))
}

// find returns the send with client id id (mu held); ids are m1, m2, … in order.
func (s *session) find(id string) *sendRec {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "m"))
	if err != nil || n < 1 || n > len(s.sends) || s.sends[n-1].id != id {
		return nil
	}
	return s.sends[n-1]
}

func (s *session) errorFrame(e *parleypb.Error) {
	if e.Id == "" {
		if e.Code == "unavailable" { // a failed sync, or live delivery interrupted
			s.r.ctr.syncAsked.Add(1)
			s.mu.Lock()
			s.resync = true
			s.mu.Unlock()
			return
		}
		s.r.ctr.note(&s.r.ctr.otherErrors, "%s: error %s: %s", s.u.name, e.Code, e.Message)
		return
	}
	s.mu.Lock()
	rec, ok := s.pending[e.Id]
	retry := e.Code == "unavailable" || e.Code == "rate_limited"
	if ok && retry {
		rec.retryAt = time.Now().Add(backoff(rec.writes - 1))
	} else if ok {
		delete(s.pending, e.Id) // refused for good: never acked
	}
	s.mu.Unlock()
	switch {
	case !ok:
		s.r.ctr.lateErrors.Add(1) // an answer to an earlier write of a send answered since
	case retry:
		s.r.ctr.retryAnswers(e.Code)
	default:
		s.r.ctr.note(&s.r.ctr.rejected, "%s: send %s refused: %s: %s", s.u.name, e.Id, e.Code, e.Message)
	}
}

// messageText is a text of size bytes that starts with the time of the first
// attempt, so that a recipient can time the delivery.
func messageText(at time.Time, size int) string {
	t := fmt.Sprintf("t%d ", at.UnixNano())
	if len(t) >= size {
		return t
	}
	return t + strings.Repeat("x", size-len(t))
}

// sentAt reads the time messageText put in text.
func sentAt(text string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(text, "t")
	if !ok {
		return time.Time{}, false
	}
	num, _, _ := strings.Cut(rest, " ")
	ns, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}
