// Command chat is a small interactive Parley client, for trying a node by hand.
//
// It logs in (registering the account first with -register), opens /v1/ws in
// JSON encoding, sends sync at once, and prints every server frame as a readable
// line. Each line read from stdin is sent as a message to the current recipient,
// with a fresh client message id. Two lines are commands instead:
//
//	/to NAME   send to NAME from now on
//	/history   ask the history of the conversation with the current recipient
//	/away      show this user away to its contacts (/online: back)
//
// It pings every 15 seconds, so that the node does not take a quiet session for a
// dead one (presence.deadAfter), and prints contacts' presence changes and typing.
//
// After each batch of message frames it sends received with the highest seq,
// which moves this device's cursor (-device reuses a device, and so resumes
// where it left off). EOF on stdin waits up to five seconds for the answers
// still due, then closes the socket normally.
//
//	go run ./cmd/chat -register -user alice -password 'correct horse' -to bob
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
	"github.com/parleychat/parley/proto/parleypb"
)

// syncKey marks the first sync as pending (requests are keyed by their id).
const syncKey = ""

// chat is the state of one session; only run's goroutine touches it.
type chat struct {
	conn    *client.Conn
	pings   int // heartbeat pings whose pong is still due
	user    string
	to      string
	prefix  string // random: client ids are deduped per sender, so each run needs new ones
	next    int
	lastSeq uint64          // highest seq printed
	acked   uint64          // highest seq sent in received
	pending map[string]bool // sync, send and history requests not answered yet
}

func main() { os.Exit(run()) }

func run() int {
	base := flag.String("url", "http://127.0.0.1:8080", "base URL of a node (REST and WebSocket)")
	user := flag.String("user", "", "username (required)")
	password := flag.String("password", "", "password, 8 to 72 bytes (required)")
	register := flag.Bool("register", false, "create the account first (an existing account is used as is)")
	device := flag.String("device", "", "device id to reuse, resuming from its cursor (empty: a new device)")
	to := flag.String("to", "", "recipient of the lines you type (change it with /to NAME)")
	flag.Parse()
	if *user == "" || *password == "" {
		fmt.Fprintln(os.Stderr, "chat: -user and -password are required")
		flag.Usage()
		return 2
	}
	conn, s, err := connect(*base, *user, *password, *device, *register)
	if err != nil {
		fmt.Fprintf(os.Stderr, "chat: %v\n", err)
		return 1
	}
	fmt.Printf("connected as %s (device %s); commands: /to NAME, /history, /away, /online\n", s.UserID, s.DeviceID)
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &chat{conn: conn, user: s.UserID, to: *to, prefix: hex.EncodeToString(b[:]), pending: map[string]bool{}}

	frames, readErr := make(chan *parleypb.ServerFrame, 256), make(chan error, 1)
	go readFrames(conn, frames, readErr)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	c.request(syncKey, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{}}})

	var grace <-chan time.Time
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ping.C: // a heartbeat; its pong is not printed
			c.pings++
			if err := c.conn.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Ping{Ping: &parleypb.Ping{}}}); err != nil {
				fmt.Fprintf(os.Stderr, "chat: writing: %v\n", err)
			}
		case f, ok := <-frames:
			if !ok {
				fmt.Fprintf(os.Stderr, "chat: connection ended: %v\n", <-readErr)
				return 1
			}
			c.show(f)
			if len(frames) == 0 { // the end of a batch
				c.ack()
			}
		case line, ok := <-lines:
			if !ok {
				lines, grace = nil, time.After(5*time.Second)
				break
			}
			c.input(line)
		case <-grace:
			fmt.Fprintf(os.Stderr, "chat: closing with %d requests unanswered\n", len(c.pending))
			return c.close()
		}
		if lines == nil && len(c.pending) == 0 {
			return c.close()
		}
	}
}

// connect registers (if asked), logs in and dials the WebSocket.
func connect(base, user, password, device string, register bool) (*client.Conn, client.Session, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if register {
		var apiErr *client.APIError
		err := client.Register(ctx, base, user, password)
		if errors.As(err, &apiErr) && apiErr.Code == "conflict" {
			fmt.Fprintf(os.Stderr, "chat: user %s exists already; logging in\n", user)
		} else if err != nil {
			return nil, client.Session{}, fmt.Errorf("registering: %w", err)
		}
	}
	s, err := client.Login(ctx, base, user, password, device)
	if err != nil {
		return nil, s, fmt.Errorf("logging in: %w", err)
	}
	conn, err := client.Dial(ctx, base, s.Token, wire.JSON)
	if err != nil {
		return nil, s, fmt.Errorf("opening the WebSocket: %w", err)
	}
	return conn, s, nil
}

// readFrames passes server frames on until reading fails; then it puts the
// reason into errc and closes frames.
func readFrames(conn *client.Conn, frames chan<- *parleypb.ServerFrame, errc chan<- error) {
	defer close(frames)
	for {
		f, err := conn.Read(time.Hour)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue // an idle hour: the server does not time out idle sockets
		}
		if err != nil {
			errc <- err
			return
		}
		frames <- f
	}
}

// input sends a typed line as a message, or runs a command.
func (c *chat) input(line string) {
	line = strings.TrimRight(line, "\r")
	switch {
	case strings.TrimSpace(line) == "":
	case strings.HasPrefix(line, "/to "):
		c.to = strings.TrimSpace(strings.TrimPrefix(line, "/to "))
		fmt.Printf("now sending to %s\n", c.to)
	case line == "/away" || line == "/online":
		status := strings.TrimPrefix(line, "/")
		if err := c.conn.Write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Presence{Presence: &parleypb.SetPresence{Status: status}}}); err != nil {
			fmt.Fprintf(os.Stderr, "chat: writing: %v\n", err)
		}
		fmt.Printf("shown %s\n", status)
	case strings.HasPrefix(line, "/") && line != "/history":
		fmt.Fprintln(os.Stderr, "chat: commands are /to NAME, /history, /away and /online")
	case c.to == "":
		fmt.Fprintln(os.Stderr, "chat: no recipient: start with -to NAME or type /to NAME")
	case line == "/history":
		c.next++
		id := fmt.Sprintf("h%s-%d", c.prefix, c.next)
		c.request(id, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_History{History: &parleypb.HistoryRequest{
			Id: id, Conversation: convid.DirectID(c.user, c.to)}}})
	default:
		c.next++
		id := fmt.Sprintf("c%s-%d", c.prefix, c.next)
		c.request(id, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Send{Send: &parleypb.Send{
			Id: id, To: c.to, Text: line}}})
	}
}

// request writes f and remembers that id awaits an answer.
func (c *chat) request(id string, f *parleypb.ClientFrame) {
	if err := c.conn.Write(f); err != nil {
		fmt.Fprintf(os.Stderr, "chat: writing: %v\n", err)
		return
	}
	c.pending[id] = true
}

// show prints one server frame.
func (c *chat) show(f *parleypb.ServerFrame) {
	switch b := f.Body.(type) {
	case *parleypb.ServerFrame_Message:
		if b.Message.Seq <= c.lastSeq {
			return // a repeat: delivery is at-least-once
		}
		c.lastSeq = b.Message.Seq
		fmt.Printf("[seq %d] %s\n", b.Message.Seq, describe(b.Message))
		if m := b.Message; m.From != c.user { // printed on a terminal: read
			c.write(&parleypb.ClientFrame{Body: &parleypb.ClientFrame_Read{Read: &parleypb.Read{
				Conversation: m.Conversation, UpTo: m.MessageId}}})
		}
	case *parleypb.ServerFrame_Sent:
		delete(c.pending, b.Sent.Id)
		fmt.Printf("sent %s -> %d\n", b.Sent.Id, b.Sent.MessageId)
	case *parleypb.ServerFrame_Synced:
		fmt.Printf("synced up to seq %d%s\n", b.Synced.UpTo, when(b.Synced.More, " (more)"))
		if b.Synced.More {
			after := b.Synced.UpTo
			c.request(syncKey, &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Sync{Sync: &parleypb.Sync{After: &after}}})
		} else {
			delete(c.pending, syncKey)
		}
	case *parleypb.ServerFrame_History:
		delete(c.pending, b.History.Id)
		fmt.Printf("history of %s: %d messages%s\n", b.History.Conversation, len(b.History.Messages),
			when(b.History.More, " (older ones exist)"))
		for _, m := range b.History.Messages {
			fmt.Printf("  %s\n", describe(m))
		}
		for _, r := range b.History.Receipts {
			fmt.Printf("  %s\n", receipt(r))
		}
	case *parleypb.ServerFrame_Error:
		delete(c.pending, b.Error.Id)
		fmt.Printf("error %s: %s%s\n", b.Error.Code, b.Error.Message, when(b.Error.Id != "", " (id "+b.Error.Id+")"))
	case *parleypb.ServerFrame_Pong:
		if c.pings > 0 {
			c.pings-- // a heartbeat's
			return
		}
		fmt.Println("pong")
	case *parleypb.ServerFrame_Presence:
		p := b.Presence
		switch {
		case p.Status == "offline" && p.LastSeen > 0:
			fmt.Printf("%s is offline (last seen %s)\n", p.User, time.UnixMilli(p.LastSeen).Format(time.Kitchen))
		default:
			fmt.Printf("%s is %s\n", p.User, p.Status)
		}
	case *parleypb.ServerFrame_Typing:
		fmt.Printf("%s is typing in %s\n", b.Typing.From, b.Typing.Conversation)
	case *parleypb.ServerFrame_Receipt:
		fmt.Println(receipt(b.Receipt))
	default:
		fmt.Printf("%v\n", f)
	}
}

// receipt describes a receipt as ticks: ✓ delivered, ✓✓ read.
func receipt(r *parleypb.Receipt) string {
	ticks, who := "✓", r.User
	if r.Status == "read" {
		ticks = "✓✓"
	}
	if r.All {
		who = "everyone"
	}
	return fmt.Sprintf("%s %s by %s in %s, up to id %d", ticks, r.Status, who, r.Conversation, r.UpTo)
}

// write writes a frame that expects no answer.
func (c *chat) write(f *parleypb.ClientFrame) {
	if err := c.conn.Write(f); err != nil {
		fmt.Fprintf(os.Stderr, "chat: writing: %v\n", err)
	}
}

func describe(m *parleypb.Message) string {
	to := m.To
	if to == "" {
		to = m.Conversation
	}
	return fmt.Sprintf("%s -> %s: %s (id %d)", m.From, to, m.Text, m.MessageId)
}

func when(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}

// ack moves this device's cursor to the highest seq printed.
func (c *chat) ack() {
	if c.lastSeq <= c.acked {
		return
	}
	f := &parleypb.ClientFrame{Body: &parleypb.ClientFrame_Received{Received: &parleypb.Received{UpTo: c.lastSeq}}}
	if err := c.conn.Write(f); err == nil {
		c.acked = c.lastSeq
	}
}

func (c *chat) close() int {
	if err := c.conn.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "chat: closing: %v\n", err)
		return 1
	}
	return 0
}
