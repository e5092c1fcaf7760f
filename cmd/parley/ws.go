package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// What send, listen and chat share: the WebSocket, its frames, and how a message
// is shown.

// socket is a WebSocket of the session with a goroutine reading it.
type socket struct {
	conn   *client.Conn
	frames chan *parleypb.ServerFrame // closed when reading ends
	err    error                      // why reading ended; read it after frames is closed
}

// dial opens the session's WebSocket (JSON frames) and starts reading it.
func (e *env) dial(s session) (*socket, error) {
	conn, err := client.Dial(e.ctx, e.baseURL(s), s.Token, wire.JSON)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", e.baseURL(s), describe(err))
	}
	k := &socket{conn: conn, frames: make(chan *parleypb.ServerFrame, 256)}
	go k.read()
	return k, nil
}

func (k *socket) read() {
	defer close(k.frames)
	for {
		f, err := k.conn.Read(time.Hour)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue // an idle hour: the server does not close idle sockets that ping
		}
		if err != nil {
			k.err = err
			return
		}
		k.frames <- f
	}
}

// write sends a frame.
func (k *socket) write(f *parleypb.ClientFrame) error { return k.conn.Write(f) }

// ping is the heartbeat (the server closes a socket silent for 30 s).
func (k *socket) ping() error {
	return k.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}})
}

// ended words why reading stopped.
func (k *socket) ended() error {
	if client.IsClose(k.err, 1000) {
		return fmt.Errorf("the server closed the connection (%v)", k.err)
	}
	return fmt.Errorf("connection lost: %v", k.err)
}

// newClientID is a fresh client message id: random, so that runs never collide
// in the server's dedupe (sender, conversation, client id).
func newClientID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// target is where a message goes: one of to, group, channel.
type target struct {
	to, group, channel string
}

// targetFlags registers --group and --channel; the user is a positional argument.
func targetFlags(fs *flag.FlagSet) *target {
	t := &target{}
	fs.StringVar(&t.group, "group", "", "a group id (the target instead of a user)")
	fs.StringVar(&t.channel, "channel", "", "a channel id (the target instead of a user)")
	return t
}

// pick takes the user from args when neither --group nor --channel is given, and
// returns the arguments left.
func (t *target) pick(args []string) ([]string, error) {
	t.group, t.channel = bareID(t.group, convid.Group), bareID(t.channel, convid.Channel)
	switch {
	case t.group != "" && t.channel != "":
		return nil, usageErrorf("give --group or --channel, not both")
	case t.group != "" || t.channel != "":
		return args, nil
	case len(args) == 0:
		return nil, usageErrorf("missing the user (or --group ID, --channel ID)")
	}
	t.to = args[0]
	return args[1:], nil
}

// conversation is the target's conversation id, for history.
func (t target) conversation(me string) string {
	switch {
	case t.group != "":
		return convid.GroupID(t.group)
	case t.channel != "":
		return convid.ChannelID(t.channel)
	}
	return convid.DirectID(me, t.to)
}

// bareID strips a conversation prefix ("group:", "channel:") a user may have pasted.
func bareID(id, prefix string) string { return strings.TrimPrefix(id, prefix+":") }

// messageJSON is the message frame as the server encodes it (one line).
func messageJSON(m *parleypb.Message) []byte {
	b, err := wire.EncodeServer(wire.JSON, &parleypb.ServerFrame{Body: &parleypb.ServerFrame_Message{Message: m}})
	if err != nil {
		b, _ = json.Marshal(map[string]string{"type": "message", "error": err.Error()})
	}
	return b
}

// names gives conversations their readable names: group and channel names, read
// once each through REST.
type names struct {
	e    *env
	s    session
	seen map[string]string
}

func newNames(e *env, s session) *names { return &names{e: e, s: s, seen: map[string]string{}} }

// where names m's conversation from me's side: "bob", "group Friends", "#news".
func (n *names) where(m *parleypb.Message, me string) string {
	switch {
	case m.Channel != "":
		return "#" + n.lookup("/v1/channels/"+seg(m.Channel), "channel", m.Channel)
	case m.Group != "":
		return "group " + n.lookup("/v1/groups/"+seg(m.Group), "group", m.Group)
	case m.From == me:
		return m.To
	}
	return "you"
}

func (n *names) lookup(path, kind, id string) string {
	if name, ok := n.seen[path]; ok {
		return name
	}
	var ans map[string]struct {
		Name string `json:"name"`
	}
	name := id
	if _, err := n.e.apiInto(n.s, http.MethodGet, path, nil, &ans); err == nil && ans[kind].Name != "" {
		name = ans[kind].Name
	}
	n.seen[path] = name
	return name
}

// line shows a message for people: "15:04:05  alice → you: hi".
func (e *env) line(n *names, m *parleypb.Message, me string) string {
	from := m.From
	if from == me {
		from = "you"
	}
	s := fmt.Sprintf("%s  %s → %s: %s", clock(m.Ts), from, n.where(m, me), cleanOne(m.Text))
	if e.g.verbose {
		s += fmt.Sprintf("  (id %d", m.MessageId)
		if m.Seq > 0 {
			s += fmt.Sprintf(", seq %d", m.Seq)
		}
		s += ")"
	}
	return s
}
