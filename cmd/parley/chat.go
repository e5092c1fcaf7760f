package main

import (
	"bufio"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/proto/parleypb"
)

// The interactive client (it was cmd/chat).

var chatCmd = &command{
	name: "chat", args: "[--to USER | --group ID | --channel ID] [flags]", summary: "the interactive client",
	help: `Opens the session's WebSocket, replays what this device missed, then shows every
message as it arrives: "15:04:05  bob → you: hi". Each line you type is sent to the
current conversation. Your messages show their ticks as receipts come in:
✓ delivered, ✓✓ read. -v adds message ids and seqs. Lines starting with / are
commands:

  /to USER       talk to USER from now on
  /group ID      talk in a group
  /channel ID    post to a channel
  /history       the current conversation's latest messages
  /away, /online show yourself away or online to your contacts
  /help          these commands
  /quit          leave (so does end of input, after the answers still due)

Messages shown are marked read and acknowledged (this device's cursor moves, so
the next chat or listen --missed goes on from there).`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		t := targetFlags(fs)
		to := fs.String("to", "", "the user to talk to")
		return func(args []string) error {
			if err := want(args, 0, 0); err != nil {
				return err
			}
			t.to, t.group, t.channel = *to, bareID(t.group, convid.Group), bareID(t.channel, convid.Channel)
			if (t.to != "" && t.group != "") || (t.to != "" && t.channel != "") || (t.group != "" && t.channel != "") {
				return usageErrorf("give one of --to, --group and --channel")
			}
			s, err := e.loadSession()
			if err != nil {
				return err
			}
			k, err := e.dial(s)
			if err != nil {
				return err
			}
			c := &chat{e: e, k: k, me: s.User, target: *t, names: newNames(e, s), pending: map[string]bool{},
				shown: newRecent(10000), outbox: map[string]string{}, mine: map[int64]string{}}
			return c.run()
		}
	},
}

// syncKey marks the sync in pending (requests are keyed by their id).
const syncKey = ""

// chat is one interactive session; only run's goroutine touches it.
type chat struct {
	e       *env
	k       *socket
	me      string
	target  target
	names   *names
	pings   int // heartbeat pings whose pong is still due
	next    int
	caught  bool            // the first replay is over
	lastSeq uint64          // highest seq shown
	acked   uint64          // highest seq sent in received
	pending map[string]bool // sync, send and history requests not answered yet
	shown   *recent         // message ids shown
	outbox  map[string]string
	mine    map[int64]string // texts of my messages, for the receipts' lines
}

func (c *chat) run() error {
	e := c.e
	defer c.k.conn.Close()
	fmt.Fprintf(e.out, "connected as %s; %s. /help lists the commands.\n", c.me, c.talking())
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(e.in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Channels{Channels: &parleypb.ChannelsRequest{}}})
	c.request(syncKey, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{}}})

	var grace <-chan time.Time
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ping.C:
			c.pings++
			c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}})
		case f, ok := <-c.k.frames:
			if !ok {
				return c.k.ended()
			}
			c.show(f)
			if len(c.k.frames) == 0 { // the end of a batch
				c.ack()
			}
		case line, ok := <-lines:
			if !ok || strings.TrimSpace(line) == "/quit" {
				lines, grace = nil, time.After(5*time.Second)
				break
			}
			c.input(line)
		case <-grace:
			fmt.Fprintf(e.err, "closing with %d requests unanswered\n", len(c.pending))
			c.ack()
			return nil
		case <-e.ctx.Done():
			c.ack()
			return nil
		}
		if lines == nil && len(c.pending) == 0 {
			c.ack()
			return nil
		}
	}
}

// talking names the current conversation.
func (c *chat) talking() string {
	switch t := c.target; {
	case t.group != "":
		return "talking in group " + c.names.lookup("/v1/groups/"+seg(t.group), "group", t.group)
	case t.channel != "":
		return "posting to #" + c.names.lookup("/v1/channels/"+seg(t.channel), "channel", t.channel)
	case t.to != "":
		return "talking to " + t.to
	}
	return "no conversation yet: /to USER"
}

// input sends a typed line as a message, or runs a command.
func (c *chat) input(line string) {
	line = strings.TrimRight(line, "\r")
	cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	arg = strings.TrimSpace(arg)
	out := c.e.out
	switch {
	case strings.TrimSpace(line) == "":
	case cmd == "/to" && arg != "":
		c.target = target{to: arg}
		fmt.Fprintln(out, c.talking())
	case cmd == "/group" && arg != "":
		c.target = target{group: bareID(arg, convid.Group)}
		fmt.Fprintln(out, c.talking())
	case cmd == "/channel" && arg != "":
		c.target = target{channel: bareID(arg, convid.Channel)}
		fmt.Fprintln(out, c.talking())
	case cmd == "/away" || cmd == "/online":
		status := strings.TrimPrefix(cmd, "/")
		c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Presence{Presence: &parleypb.SetPresence{Status: status}}})
		fmt.Fprintf(out, "you show %s\n", status)
	case cmd == "/help":
		fmt.Fprintln(out, "commands: /to USER, /group ID, /channel ID, /history, /away, /online, /quit")
	case strings.HasPrefix(line, "/") && cmd != "/history":
		fmt.Fprintln(c.e.err, "unknown command; /help lists them")
	case c.target == target{}:
		fmt.Fprintln(c.e.err, "no conversation: /to USER, /group ID or /channel ID first")
	case cmd == "/history":
		c.next++
		id := fmt.Sprintf("h%d", c.next)
		c.request(id, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
			Id: id, Conversation: c.target.conversation(c.me), Limit: 20}}})
	default:
		id := newClientID("chat-")
		t := c.target
		c.outbox[id] = line
		c.request(id, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
			Id: id, To: t.to, Group: t.group, Channel: t.channel, Text: line}}})
	}
}

// request writes f and remembers that id awaits an answer.
func (c *chat) request(id string, f *parleypb.ClientFrame) {
	if err := c.k.write(f); err != nil {
		fmt.Fprintf(c.e.err, "writing: %v\n", err)
		return
	}
	c.pending[id] = true
}

// write writes a frame that expects no answer.
func (c *chat) write(f *parleypb.ClientFrame) {
	if err := c.k.write(f); err != nil {
		fmt.Fprintf(c.e.err, "writing: %v\n", err)
	}
}

// show prints one server frame.
func (c *chat) show(f *parleypb.ServerFrame) {
	out := c.e.out
	switch b := f.Body.(type) {
	case *parleypb.ServerFrame_Message:
		c.message(b.Message)
	case *parleypb.ServerFrame_Sent:
		c.sent(b.Sent)
	case *parleypb.ServerFrame_Synced:
		if b.Synced.More {
			c.request(syncKey, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{}}})
			return
		}
		delete(c.pending, syncKey)
		if c.e.g.verbose {
			fmt.Fprintf(out, "synced up to seq %d\n", b.Synced.UpTo)
		} else if !c.caught {
			fmt.Fprintln(out, "— up to date —")
		}
		c.caught = true
	case *parleypb.ServerFrame_History:
		c.history(b.History)
	case *parleypb.ServerFrame_Receipt:
		c.receipt(b.Receipt)
	case *parleypb.ServerFrame_Error:
		delete(c.pending, b.Error.Id)
		delete(c.outbox, b.Error.Id)
		if b.Error.Code == "unavailable" && b.Error.Id == "" { // live delivery interrupted: sync resumes
			c.request(syncKey, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{}}})
		}
		fmt.Fprintf(out, "error: %s (%s)\n", b.Error.Message, b.Error.Code)
	case *parleypb.ServerFrame_Pong:
		if c.pings > 0 {
			c.pings--
		}
	case *parleypb.ServerFrame_Presence:
		p := b.Presence
		if p.Status == "offline" && p.LastSeen > 0 {
			fmt.Fprintf(out, "%s is offline (last seen %s)\n", p.User, clock(p.LastSeen))
		} else {
			fmt.Fprintf(out, "%s is %s\n", p.User, p.Status)
		}
	case *parleypb.ServerFrame_Typing:
		fmt.Fprintf(out, "%s is typing…\n", b.Typing.From)
	case *parleypb.ServerFrame_Channels:
		for _, ch := range b.Channels.Channels {
			if ch.Unread > 0 {
				fmt.Fprintf(out, "#%s: %d unread (/channel %s, then /history)\n", ch.Name, ch.Unread, ch.Id)
			}
		}
	}
}

func (c *chat) message(m *parleypb.Message) {
	if m.Seq > 0 {
		if m.Seq <= c.lastSeq {
			return // a repeat: delivery is at-least-once
		}
		c.lastSeq = m.Seq
	}
	if !c.shown.add(m.MessageId) {
		return // shown at its sent, or a channel message live and in a page
	}
	if m.From == c.me {
		c.remember(m.MessageId, m.Text)
	}
	fmt.Fprintln(c.e.out, c.e.line(c.names, m, c.me))
	if m.From != c.me { // shown on a terminal: read
		c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Read{Read: &parleypb.Read{
			Conversation: m.Conversation, UpTo: m.MessageId}}})
	}
}

// sent shows my message once the server has committed it (unless its copy in my
// queue came first).
func (c *chat) sent(s *parleypb.Sent) {
	delete(c.pending, s.Id)
	text, ok := c.outbox[s.Id]
	delete(c.outbox, s.Id)
	if !ok || !c.shown.add(s.MessageId) {
		return
	}
	c.remember(s.MessageId, text)
	m := &parleypb.Message{MessageId: s.MessageId, Conversation: s.Conversation, From: c.me, Text: text, Ts: s.Ts}
	switch t := c.target; {
	case strings.HasPrefix(s.Conversation, convid.Group+":"):
		m.Group = strings.TrimPrefix(s.Conversation, convid.Group+":")
	case strings.HasPrefix(s.Conversation, convid.Channel+":"):
		m.Channel = strings.TrimPrefix(s.Conversation, convid.Channel+":")
	default:
		m.To = peer(s.Conversation, c.me, t.to)
	}
	fmt.Fprintln(c.e.out, c.e.line(c.names, m, c.me))
}

// peer is the other member of a direct conversation id.
func peer(conv, me, fallback string) string {
	a, b, ok := strings.Cut(strings.TrimPrefix(conv, convid.Direct+":"), ":")
	switch {
	case !ok:
		return fallback
	case a == me:
		return b
	}
	return a
}

// remember keeps my message's text for its receipts' lines (the latest 1000).
func (c *chat) remember(id int64, text string) {
	if len(c.mine) >= 1000 {
		clear(c.mine)
	}
	c.mine[id] = text
}

// receipt shows ticks: ✓ delivered, ✓✓ read.
func (c *chat) receipt(r *parleypb.Receipt) {
	if r.User == c.me && !c.e.g.verbose {
		return // my other device read it
	}
	mark, verb := "✓", "delivered to"
	if r.Status == "read" {
		mark, verb = "✓✓", "read by"
	}
	who := r.User
	if r.All {
		who = "everyone"
	}
	what := ""
	if text, ok := c.mine[r.UpTo]; ok {
		what = fmt.Sprintf(" up to “%s”", snippet(text))
	}
	s := fmt.Sprintf("          %s %s %s%s", mark, verb, who, what)
	if c.e.g.verbose {
		s += fmt.Sprintf(" (%s, up to id %d)", r.Conversation, r.UpTo)
	}
	fmt.Fprintln(c.e.out, s)
}

func snippet(s string) string {
	s = cleanOne(s)
	if r := []rune(s); len(r) > 30 {
		return string(r[:29]) + "…"
	}
	return s
}

// history shows a page, my messages with their ticks.
func (c *chat) history(h *parleypb.History) {
	delete(c.pending, h.Id)
	out := c.e.out
	var delivered, read int64
	for _, r := range h.Receipts {
		if r.Status == "read" {
			read = max(read, r.UpTo)
		}
		delivered = max(delivered, r.UpTo) // read implies delivered
	}
	fmt.Fprintf(out, "— history of %s%s —\n", h.Conversation, when(h.More, " (older messages exist)"))
	for _, m := range h.Messages {
		s := "  " + c.e.line(c.names, m, c.me)
		if m.From == c.me {
			if t := ticks(m.MessageId, delivered, read); t != "" {
				s += "  " + t
			}
		}
		fmt.Fprintln(out, s)
	}
	fmt.Fprintln(out, "— end of history —")
}

func when(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}

// ack moves this device's cursor to the highest seq shown.
func (c *chat) ack() {
	if c.lastSeq <= c.acked {
		return
	}
	f := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: c.lastSeq}}}
	if c.k.write(f) == nil {
		c.acked = c.lastSeq
	}
}
