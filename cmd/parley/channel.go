package main

import (
	"flag"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/convid"
)

// The channel commands: create, join, leave, show, post, history, list, add, remove.

var channelCmd = &command{
	name: "channel", args: "SUBCOMMAND", summary: "channels: create, join, leave, show, post, history, list, add, remove",
	help: `A channel is a conversation of up to 100,000 members. In a broadcast channel (the
default) only the owner and admins post; in an open one every member does. Anyone
joins a public channel by itself. Channel ids are made by the server; "channel:ID"
is accepted too.`,
	subs: []*command{channelCreateCmd, channelJoinCmd, channelLeaveCmd, channelShowCmd, channelPostCmd,
		channelHistoryCmd, channelListCmd, channelAddCmd, channelRemoveCmd},
}

// channelJSON is a channel as the REST API answers it.
type channelJSON struct {
	Channel struct {
		ID          string   `json:"id"`
		Name        string   `json:"name"`
		Owner       string   `json:"owner"`
		Mode        string   `json:"mode"`
		Public      bool     `json:"public"`
		Admins      []string `json:"admins"`
		MemberCount int64    `json:"memberCount"`
	} `json:"channel"`
}

var channelCreateCmd = &command{
	name: "create", args: "NAME [flags]", summary: "create a channel (you are its owner)",
	help: `--json prints the server's answer: {"channel":{"id","name","owner","mode","public","admins","memberCount"}}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		mode := fs.String("mode", "broadcast", "broadcast (only the owner and admins post) or open (every member posts)")
		public := fs.Bool("public", false, "anyone may see the channel and join it")
		return func(args []string) error {
			if err := want(args, 1, 1); err != nil {
				return err
			}
			if *mode != "broadcast" && *mode != "open" {
				return usageErrorf("--mode is broadcast or open, not %q", *mode)
			}
			s, err := e.loadSession()
			if err != nil {
				return err
			}
			var c channelJSON
			raw, err := e.apiInto(s, http.MethodPost, "/v1/channels",
				map[string]any{"name": args[0], "mode": *mode, "public": *public}, &c)
			if err != nil {
				return err
			}
			return e.showChannel(raw, c)
		}
	},
}

var channelShowCmd = &command{
	name: "show", args: "ID", summary: "a channel's name, owner, mode, admins and member count",
	help: `--json prints the server's answer: {"channel":{"id","name","owner","mode","public","admins","memberCount"}}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 1, 1)
			if err != nil {
				return err
			}
			var c channelJSON
			raw, err := e.apiInto(s, http.MethodGet, "/v1/channels/"+seg(bareID(args[0], convid.Channel)), nil, &c)
			if err != nil {
				return err
			}
			return e.showChannel(raw, c)
		}
	},
}

func (e *env) showChannel(raw []byte, c channelJSON) error {
	if e.g.json {
		e.printRaw(raw)
		return nil
	}
	ch := c.Channel
	e.fields([][2]string{
		{"channel", ch.ID},
		{"name", ch.Name},
		{"owner", ch.Owner},
		{"mode", ch.Mode},
		{"public", strconv.FormatBool(ch.Public)},
		{"admins", strings.Join(ch.Admins, ", ")},
		{"members", strconv.FormatInt(ch.MemberCount, 10)},
	})
	return nil
}

var channelListCmd = &command{
	name: "list", args: "[flags]", summary: "your channels, with unread counts",
	help: `UNREAD is counted up to 1000 ("1000" means 1,000 or more).
--json prints the server's answer: {"channels":[{"channel","id","name","mode","role","lastMessageId","readUpTo","unread"}]}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 0, 0)
			if err != nil {
				return err
			}
			var ans struct {
				Channels []struct {
					ID     string `json:"id"`
					Name   string `json:"name"`
					Mode   string `json:"mode"`
					Role   string `json:"role"`
					Unread int64  `json:"unread"`
				} `json:"channels"`
			}
			raw, err := e.apiInto(s, http.MethodGet, "/v1/channels", nil, &ans)
			if err != nil {
				return err
			}
			if e.g.json {
				e.printRaw(raw)
				return nil
			}
			rows := [][]string{}
			for _, c := range ans.Channels {
				rows = append(rows, []string{c.ID, c.Name, c.Mode, c.Role, strconv.FormatInt(c.Unread, 10)})
			}
			e.table([]string{"CHANNEL", "NAME", "MODE", "ROLE", "UNREAD"}, rows)
			return nil
		}
	},
}

var channelJoinCmd = &command{
	name: "join", args: "ID", summary: "join a public channel",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			return e.channelSelf(args, http.MethodPost, "joined")
		}
	},
}

var channelLeaveCmd = &command{
	name: "leave", args: "ID", summary: "leave a channel (its owner cannot)",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			return e.channelSelf(args, http.MethodDelete, "left")
		}
	},
}

// channelSelf adds (POST) or removes (DELETE) the session's user.
func (e *env) channelSelf(args []string, method, done string) error {
	s, err := e.sessionFor(args, 1, 1)
	if err != nil {
		return err
	}
	id := bareID(args[0], convid.Channel)
	path, body := "/v1/channels/"+seg(id)+"/members", any(map[string]string{"user": s.User})
	if method == http.MethodDelete {
		path, body = path+"/"+seg(s.User), nil
	}
	if _, err := e.api(s, method, path, body); err != nil {
		return err
	}
	if !e.g.json {
		e.say("%s channel %s", done, id)
	}
	return nil
}

var channelAddCmd = &command{
	name: "add", args: "ID USER...", summary: "add members (owner and admins; at most 1,000 a call)",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 2, -1)
			if err != nil {
				return err
			}
			id := bareID(args[0], convid.Channel)
			if _, err := e.api(s, http.MethodPost, "/v1/channels/"+seg(id)+"/members", map[string][]string{"users": args[1:]}); err != nil {
				return err
			}
			if !e.g.json {
				e.say("added %s to channel %s", strings.Join(args[1:], ", "), id)
			}
			return nil
		}
	},
}

var channelRemoveCmd = &command{
	name: "remove", args: "ID USER...", summary: "remove members (owner and admins)",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			if err := want(args, 2, -1); err != nil {
				return err
			}
			id := bareID(args[0], convid.Channel)
			return e.eachUser(args[1:], http.MethodDelete, "/v1/channels/"+seg(id)+"/members/",
				func(u string) string { return "removed " + u + " from channel " + id })
		}
	},
}

var channelPostCmd = &command{
	name: "post", args: "ID [TEXT...]", summary: "post to a channel (as send --channel ID)",
	help: `The text is the arguments joined by spaces, or stdin. --json prints the "sent"
frame, as send does.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		id := fs.String("id", "", "client message id (default a random one)")
		timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server's answer")
		return func(args []string) error {
			if err := want(args, 1, -1); err != nil {
				return err
			}
			text, err := e.messageText(args[1:])
			if err != nil {
				return err
			}
			return e.sendAndShow(target{channel: bareID(args[0], convid.Channel)}, text, *id, *timeout)
		}
	},
}

var channelHistoryCmd = &command{
	name: "history", args: "ID [flags]", summary: "a channel's messages (members; a public channel: anyone)",
	help: `As history --channel ID. --json prints the server's answer: {"messages":[…],"more":bool}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		page := pageFlags(fs)
		return func(args []string) error {
			s, err := e.sessionFor(args, 1, 1)
			if err != nil {
				return err
			}
			return e.history(s, convid.ChannelID(bareID(args[0], convid.Channel)), page())
		}
	},
}
