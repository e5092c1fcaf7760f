package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// Sends of a Client: client ids, waiting for sent, resending the same id after a
// reconnect or an unavailable answer.

type outcome struct {
	messageID int64
	err       *parleypb.Error // an error frame
}

// pending is one waiting SendID call.
type pending struct {
	conv  string
	done  chan struct{} // closed with res set: sent, or a final error
	retry chan struct{} // cap 1: answered unavailable, send again
	res   outcome
	once  sync.Once
}

// resolve hands a sent (conv set) or an error frame (conv "") to the waiters of
// the client id; it reports whether there were any.
func (c *Client) resolve(id, conv string, o outcome) bool {
	c.mu.Lock()
	ws := c.waiters[id]
	c.mu.Unlock()
	if conv != "" && !slices.ContainsFunc(ws, func(p *pending) bool { return p.conv == conv }) {
		return false // a late answer to an earlier send of this id to another conversation
	}
	found := false
	for _, p := range ws {
		if conv != "" && p.conv != conv {
			continue
		}
		found = true
		if o.err != nil && retryable(o.err.Code) {
			select {
			case p.retry <- struct{}{}:
			default:
			}
			continue
		}
		p.once.Do(func() { p.res = o; close(p.done) })
	}
	return found
}

// retryable codes leave the outcome of a send unknown: it is sent again with the
// same id.
func retryable(code string) bool { return code == "unavailable" || code == "rate_limited" }

// NewID returns a fresh client message id, unique to this Client: a random
// prefix and a counter.
func (c *Client) NewID() string {
	return c.prefix + "-" + strconv.FormatUint(c.ids.Add(1), 36)
}

// Send sends text to the user to and returns the message id once the server has
// committed it. It assigns a new client id and sends it again, with the same id,
// after a reconnection or an unavailable answer, until the server answers sent,
// answers another error (*SendError), ctx ends or the client closes. A send that
// returns ctx's error may still have been committed.
func (c *Client) Send(ctx context.Context, to, text string) (int64, error) {
	return c.SendID(ctx, c.NewID(), to, text)
}

// SendID is Send with a client id of the caller's (1-64 characters): sending an
// id again, even from another Client of the same user, returns the first
// message's id and creates no second message. Error frames carry only the id, so
// concurrent SendID calls with one id to different users share their errors.
func (c *Client) SendID(ctx context.Context, id, to, text string) (int64, error) {
	switch n := utf8.RuneCountInString(id); {
	case n == 0 || n > 64:
		return 0, fmt.Errorf("client: client id must have 1 to 64 characters, has %d", n)
	case to == "" || text == "":
		return 0, errors.New("client: send needs a recipient and a text")
	}
	c.start()
	p := &pending{conv: convid.DirectID(c.opts.Username, to), done: make(chan struct{}), retry: make(chan struct{}, 1)}
	c.mu.Lock()
	c.waiters[id] = append(slices.Clip(c.waiters[id]), p) // copy on write, as in forget
	c.mu.Unlock()
	defer c.forget(id, p)

	frame := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{Id: id, To: to, Text: text}}}
	retries := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		c.mu.Lock()
		cs, gen := c.conn, c.connGen
		c.mu.Unlock()
		if cs != nil {
			if err := cs.conn.Write(frame); err != nil {
				_ = cs.conn.Drop() // reconnect; gen fires when a new connection is up
			}
		}
		var wait <-chan time.Time
	waiting:
		for {
			select {
			case <-p.done:
				if p.res.err != nil {
					return 0, &SendError{ID: id, Code: p.res.err.Code, Message: p.res.err.Message}
				}
				return p.res.messageID, nil
			case <-p.retry:
				c.log.Debug("send answered unavailable; sending again", slog.String("id", id), slog.Int("retries", retries))
				if wait == nil {
					timer.Reset(c.opts.Backoff.Delay(retries))
					wait = timer.C
					retries++
				}
			case <-wait:
				break waiting
			case <-gen:
				c.log.Debug("new connection; sending again", slog.String("id", id))
				break waiting
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-c.failed:
				return 0, c.fatalErr
			case <-c.ctx.Done():
				return 0, ErrClosed
			}
		}
	}
}

func (c *Client) forget(id string, p *pending) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A new slice: resolve may be reading the old one outside the lock.
	ws := slices.DeleteFunc(slices.Clone(c.waiters[id]), func(q *pending) bool { return q == p })
	if len(ws) == 0 {
		delete(c.waiters, id)
	} else {
		c.waiters[id] = ws
	}
}
