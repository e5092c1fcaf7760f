package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// The message commands: send, listen, history.

var sendCmd = &command{
	name: "send", args: "(USER | --group ID | --channel ID) [TEXT...]", summary: "send a message",
	help: `The text is the arguments joined by spaces; with none, or "-", it is all of stdin
(one message, its last line break dropped). The message goes out on a WebSocket,
and send returns once the server answers that it is durably committed.

--id sets the client message id: sending again with the same id (to the same
conversation) creates no second message and gets the same answer, so a send that
timed out (exit 7) or failed with exit 1 can be repeated safely.

--json prints the protocol's "sent" frame:
  {"type":"sent","id":"<client id>","messageId":"<id>","conversation":"dm:a:b","ts":<unix ms>}`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		t := targetFlags(fs)
		id := fs.String("id", "", "client message id, 1-64 characters (default a random one)")
		timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server's answer")
		return func(args []string) error {
			rest, err := t.pick(args)
			if err != nil {
				return err
			}
			text, err := e.messageText(rest)
			if err != nil {
				return err
			}
			return e.sendAndShow(*t, text, *id, *timeout)
		}
	},
}

// messageText is the arguments joined, or stdin when there are none (or "-").
func (e *env) messageText(args []string) (string, error) {
	if len(args) > 0 && !(len(args) == 1 && args[0] == "-") {
		return strings.Join(args, " "), nil
	}
	b, err := io.ReadAll(io.LimitReader(e.in, 1<<20))
	if err != nil {
		return "", fmt.Errorf("reading stdin: %w", err)
	}
	text := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if text == "" {
		return "", usageErrorf("no text: give it as arguments or on stdin")
	}
	return text, nil
}

// sendAndShow sends one message and prints the answer.
func (e *env) sendAndShow(t target, text, id string, timeout time.Duration) error {
	s, err := e.loadSession()
	if err != nil {
		return err
	}
	if id == "" {
		id = newClientID("cli-")
	}
	sent, err := e.send(s, t, text, id, timeout)
	if err != nil {
		return err
	}
	if e.g.json {
		b, err := wire.EncodeServer(wire.JSON, &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Sent{Sent: sent}})
		if err != nil {
			return err
		}
		e.printRaw(b)
		return nil
	}
	to := t.to
	switch {
	case t.group != "":
		to = "group " + t.group
	case t.channel != "":
		to = "channel " + t.channel
	}
	if e.g.verbose {
		e.say("sent to %s at %s (message id %d, client id %s)", to, clock(sent.Ts), sent.MessageId, sent.Id)
	} else {
		e.say("sent to %s at %s", to, clock(sent.Ts))
	}
	return nil
}

// send writes one send frame and waits for its sent (or error) answer.
func (e *env) send(s session, t target, text, id string, timeout time.Duration) (*parleypb.Sent, error) {
	k, err := e.dial(s)
	if err != nil {
		return nil, err
	}
	defer k.conn.Close()
	f := &parleypb.Send{Id: id, To: t.to, Group: t.group, Channel: t.channel, Text: text}
	if err := k.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: f}}); err != nil {
		return nil, fmt.Errorf("sending: %w", err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case fr, ok := <-k.frames:
			if !ok {
				return nil, fmt.Errorf("%w (the outcome is unknown: send again with --id %s)", k.ended(), id)
			}
			switch b := fr.Body.(type) {
			case *parleypb.ServerFrame_Sent:
				if b.Sent.Id == id {
					return b.Sent, nil
				}
			case *parleypb.ServerFrame_Error:
				if b.Error.Id == id || b.Error.Id == "" {
					return nil, &frameError{code: b.Error.Code, message: b.Error.Message}
				}
			}
		case <-timer.C:
			return nil, &exitError{code: exitTimeout, err: fmt.Errorf("no answer within %v (the outcome is unknown: send again with --id %s)", timeout, id)}
		case <-e.ctx.Done():
			return nil, e.ctx.Err()
		}
	}
}

var listenCmd = &command{
	name: "listen", args: "[flags]", summary: "print live messages as they arrive",
	help: `Prints each message that reaches the session's user (direct, group and, unless
--channels=false, channel messages; the user's own from other devices too) from the
time listen is live, until it is interrupted (exit 0), --count messages were
printed (exit 0), or --timeout passes (exit 0, or 7 when --count was not reached).
"listening as USER" goes to stderr once it is live. --missed prints first what this
device has not acknowledged yet. Printed messages are acknowledged (the senders
see them delivered).

--json prints one protocol "message" frame per line:
  {"type":"message","seq":"<n>","messageId":"<id>","conversation":"dm:a:b","from":"a","to":"b","text":"…","ts":<unix ms>,"clientId":"…"}
(a group message has "group" instead of "to"; a channel message "channel" and "prev", no "seq").`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		l := &listener{e: e}
		fs.IntVar(&l.count, "count", 0, "stop after this many messages (0: no limit)")
		fs.DurationVar(&l.timeout, "timeout", 0, "stop after this long (0: no limit)")
		fs.BoolVar(&l.missed, "missed", false, "print first what this device missed (since its cursor)")
		fs.BoolVar(&l.channels, "channels", true, "follow the user's channels too")
		return func(args []string) error {
			if err := want(args, 0, 0); err != nil {
				return err
			}
			if l.count < 0 || l.timeout < 0 {
				return usageErrorf("--count and --timeout must not be negative")
			}
			return l.run()
		}
	},
}

// listener is one run of listen.
type listener struct {
	e                *env
	count            int
	timeout          time.Duration
	missed, channels bool

	k       *socket
	names   *names
	me      string
	printed int
	lastSeq uint64 // highest seq printed
	acked   uint64
	seen    *recent
}

func (l *listener) run() error {
	e := l.e
	s, err := e.loadSession()
	if err != nil {
		return err
	}
	l.me, l.names, l.seen = s.User, newNames(e, s), newRecent(10000)
	if l.k, err = e.dial(s); err != nil {
		return err
	}
	defer l.k.conn.Close()
	if l.channels {
		if err := l.k.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Channels{Channels: &parleypb.ChannelsRequest{}}}); err != nil {
			return err
		}
	}
	sync := &parleypb.Sync{}
	if !l.missed {
		// A position past the queue's end answers nothing and makes the connection
		// live from the end (PROTOCOL: "a made-up after never hides later entries").
		end := uint64(math.MaxInt64)
		sync.After = &end
	}
	if err := l.k.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: sync}}); err != nil {
		return err
	}
	var deadline <-chan time.Time
	if l.timeout > 0 {
		t := time.NewTimer(l.timeout)
		defer t.Stop()
		deadline = t.C
	}
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case f, ok := <-l.k.frames:
			if !ok {
				return l.k.ended()
			}
			if err := l.frame(f); err != nil {
				return err
			}
			if l.count > 0 && l.printed >= l.count {
				l.ack()
				return nil
			}
			if len(l.k.frames) == 0 {
				l.ack()
			}
		case <-ping.C:
			_ = l.k.ping()
		case <-deadline:
			l.ack()
			if l.count > 0 {
				return &exitError{code: exitTimeout, err: fmt.Errorf("%d of %d messages within %v", l.printed, l.count, l.timeout)}
			}
			return nil
		case <-e.ctx.Done():
			l.ack()
			return nil
		}
	}
}

// frame handles one server frame.
func (l *listener) frame(f *parleypb.ServerFrame) error {
	switch b := f.Body.(type) {
	case *parleypb.ServerFrame_Message:
		l.message(b.Message)
	case *parleypb.ServerFrame_Synced:
		if b.Synced.More {
			return l.k.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{}}})
		}
		fmt.Fprintf(l.e.err, "listening as %s\n", l.me)
	case *parleypb.ServerFrame_Error:
		if b.Error.Code == "unavailable" { // live delivery interrupted: sync resumes it
			return l.k.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{}}})
		}
		fmt.Fprintf(l.e.err, "%s: server error %s: %s\n", l.e.path, b.Error.Code, b.Error.Message)
	}
	return nil
}

func (l *listener) message(m *parleypb.Message) {
	if m.Seq > 0 {
		if m.Seq <= l.lastSeq {
			return // a repeat: delivery is at-least-once
		}
		l.lastSeq = m.Seq
	}
	if !l.seen.add(m.MessageId) {
		return // a channel message live and again, or a repeat under a new seq
	}
	if l.count > 0 && l.printed >= l.count {
		return
	}
	l.printed++
	if l.e.g.json {
		l.e.printRaw(messageJSON(m))
		return
	}
	fmt.Fprintln(l.e.out, l.e.line(l.names, m, l.me))
}

// ack moves the device's cursor to what was printed.
func (l *listener) ack() {
	if l.lastSeq <= l.acked {
		return
	}
	f := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: l.lastSeq}}}
	if l.k.write(f) == nil {
		l.acked = l.lastSeq
	}
}

// recent is a set of the last n message ids.
type recent struct {
	ids  map[int64]bool
	ring []int64
	next int
}

func newRecent(n int) *recent { return &recent{ids: map[int64]bool{}, ring: make([]int64, 0, n)} }

// add reports whether id is new, and remembers it.
func (r *recent) add(id int64) bool {
	if r.ids[id] {
		return false
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, id)
	} else {
		delete(r.ids, r.ring[r.next])
		r.ring[r.next] = id
		r.next = (r.next + 1) % len(r.ring)
	}
	r.ids[id] = true
	return true
}

var historyCmd = &command{
	name: "history", args: "(USER | --group ID | --channel ID | --conversation ID) [flags]", summary: "a conversation's messages",
	help: `Prints a page of the conversation's messages, oldest first: the newest --limit, or
those just before --before, or the oldest after --after. When there are more, the
command to page on goes to stderr. Your own messages show ✓ (delivered to everyone)
or ✓✓ (read by everyone); channels have no receipts.

--json prints the server's answer: {"messages":[…],"more":bool}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		t := targetFlags(fs)
		conv := fs.String("conversation", "", "a conversation id (dm:a:b, group:ID, channel:ID)")
		page := pageFlags(fs)
		return func(args []string) error {
			s, err := e.loadSession()
			if err != nil {
				return err
			}
			if *conv == "" {
				rest, err := t.pick(args)
				if err != nil {
					return err
				}
				if err := want(rest, 0, 0); err != nil {
					return err
				}
				*conv = t.conversation(s.User)
			} else if err := want(args, 0, 0); err != nil {
				return err
			}
			return e.history(s, *conv, page())
		}
	},
}

// pageFlags registers a history page's flags; the function returns its query.
func pageFlags(fs *flag.FlagSet) func() url.Values {
	limit := fs.Int("limit", 0, "messages in the page (default the server's, 50; at most 100)")
	before := fs.Int64("before", 0, "the page just before this message id")
	after := fs.Int64("after", 0, "the page just after this message id")
	return func() url.Values {
		q := url.Values{}
		if *limit > 0 {
			q.Set("limit", strconv.Itoa(*limit))
		}
		if *before > 0 {
			q.Set("before", strconv.FormatInt(*before, 10))
		}
		if *after > 0 {
			q.Set("after", strconv.FormatInt(*after, 10))
		}
		return q
	}
}

// historyMessage is a message of a REST history page.
type historyMessage struct {
	MessageID string `json:"messageId"`
	From      string `json:"from"`
	To        string `json:"to"`
	Group     string `json:"group"`
	Text      string `json:"text"`
	TS        int64  `json:"ts"`
}

// history prints a page of conv.
func (e *env) history(s session, conv string, q url.Values) error {
	path := "/v1/conversations/" + seg(conv) + "/messages"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page struct {
		Messages []historyMessage `json:"messages"`
		More     bool             `json:"more"`
	}
	raw, err := e.apiInto(s, http.MethodGet, path, nil, &page)
	if err != nil {
		return err
	}
	if e.g.json {
		e.printRaw(raw)
		return nil
	}
	delivered, read := e.watermarks(s, conv)
	header := []string{"TIME", "FROM", "TEXT", ""}
	if e.g.verbose {
		header = append([]string{"ID"}, header...)
	}
	rows := make([][]string, 0, len(page.Messages))
	for _, m := range page.Messages {
		id, _ := strconv.ParseInt(m.MessageID, 10, 64)
		row := []string{clock(m.TS), m.From, m.Text, ""}
		if m.From == s.User {
			row[3] = ticks(id, delivered, read)
		}
		if e.g.verbose {
			row = append([]string{m.MessageID}, row...)
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		fmt.Fprintln(e.err, "no messages")
		return nil
	}
	e.table(header, rows)
	if page.More {
		if q.Get("after") != "" {
			fmt.Fprintf(e.err, "newer messages follow: --after %s\n", page.Messages[len(page.Messages)-1].MessageID)
		} else {
			fmt.Fprintf(e.err, "older messages exist: --before %s\n", page.Messages[0].MessageID)
		}
	}
	return nil
}

// watermarks are the conversation's receipts over everyone but the caller (0, 0
// for a channel, or when they cannot be read).
func (e *env) watermarks(s session, conv string) (delivered, read int64) {
	if strings.HasPrefix(conv, convid.Channel+":") {
		return 0, 0
	}
	var r struct {
		DeliveredToAll string `json:"deliveredToAll"`
		ReadByAll      string `json:"readByAll"`
	}
	if _, err := e.apiInto(s, http.MethodGet, "/v1/conversations/"+seg(conv)+"/receipts", nil, &r); err != nil {
		return 0, 0
	}
	delivered, _ = strconv.ParseInt(r.DeliveredToAll, 10, 64)
	read, _ = strconv.ParseInt(r.ReadByAll, 10, 64)
	return delivered, read
}

// ticks draws a message's receipt: ✓✓ read, ✓ delivered, nothing yet.
func ticks(id, delivered, read int64) string {
	switch {
	case id > 0 && id <= read:
		return "✓✓"
	case id > 0 && id <= delivered:
		return "✓"
	}
	return ""
}

// decodeInto is json.Unmarshal that names what failed.
func decodeInto(raw []byte, what string, out any) error {
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding %s: %w", what, err)
	}
	return nil
}
