package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The admin commands, against a node's admin endpoint (docs/ADMIN.md): cluster,
// grains, user, conversation, disconnect, passivate.

var adminCmd = &command{
	name: "admin", args: "SUBCOMMAND [flags]", summary: "operators: cluster, grains, user, conversation, disconnect, passivate",
	help: `These call a node's admin endpoint (its own listener, listen.admin), which answers
for the whole cluster. They need no session; the admin token is --admin-token or
PARLEY_ADMIN_TOKEN (the node's admin.token). A refused token is exit code 3.
--json prints the endpoint's answer as it is (docs/ADMIN.md has its shapes).`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error { e.adminFlags(fs); return nil },
	subs:  []*command{adminClusterCmd, adminGrainsCmd, adminUserCmd, adminConversationCmd, adminDisconnectCmd, adminPassivateCmd},
}

// adminOpts are the admin commands' own globals.
type adminOpts struct {
	url, token setFlag
	init       bool
}

const defaultAdminURL = "http://127.0.0.1:8081"

// adminFlags registers --admin and --admin-token on fs (the group's and the
// subcommand's flag sets share them).
func (e *env) adminFlags(fs *flag.FlagSet) {
	if !e.adm.init {
		e.adm.init = true
		e.adm.url.fromEnv(e.getenv, "PARLEY_ADMIN_URL", defaultAdminURL)
		e.adm.token.fromEnv(e.getenv, "PARLEY_ADMIN_TOKEN", "")
	}
	fs.Var(&e.adm.url, "admin", "base `URL` of a node's admin endpoint (env PARLEY_ADMIN_URL; default "+defaultAdminURL+")")
	fs.Var(&e.adm.token, "admin-token", "the admin `TOKEN` (env PARLEY_ADMIN_TOKEN)")
}

// adminCall runs one admin request and prints the raw answer with --json.
func (e *env) adminCall(method, path string, out any) (printed bool, err error) {
	raw, err := e.call(method, strings.TrimRight(e.adm.url.v, "/"), path, e.adm.token.v, nil)
	if err != nil {
		if exitCode(err) == exitUnauthed {
			return false, fmt.Errorf("%w: give the admin token (--admin-token or PARLEY_ADMIN_TOKEN)", err)
		}
		return false, err
	}
	if e.g.json {
		e.printRaw(raw)
		return true, nil
	}
	if err := decodeInto(raw, "the admin answer", out); err != nil {
		return false, err
	}
	return false, nil
}

// adminLeaf makes an admin subcommand: its flags, then run with the positional
// arguments.
func adminLeaf(name, args, summary, help string, flags func(fs *flag.FlagSet) func(e *env, args []string) error) *command {
	return &command{name: name, args: args, summary: summary, help: help,
		setup: func(e *env, fs *flag.FlagSet) func([]string) error {
			e.adminFlags(fs)
			runFn := flags(fs)
			return func(a []string) error { return runFn(e, a) }
		}}
}

// loose is a JSON value shown as text: a string unquoted, anything else as written
// (the admin endpoint's scalars, whatever their JSON type).
type loose json.RawMessage

func (l *loose) UnmarshalJSON(b []byte) error { *l = append((*l)[:0], b...); return nil }

func (l loose) String() string {
	b := bytes.TrimSpace(l)
	if len(b) == 0 || string(b) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	return string(b)
}

// when shows a time the endpoint gives as RFC 3339 in local time.
func (l loose) when() string {
	t, err := time.Parse(time.RFC3339Nano, l.String())
	if err != nil {
		return l.String()
	}
	return clock(t.UnixMilli())
}

var adminClusterCmd = adminLeaf("cluster", "[flags]", "the cluster's members: addresses, node ids, grains, connections, uptime",
	`The member answering is marked with *; a member that did not answer is "unreachable".`,
	func(fs *flag.FlagSet) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			if err := want(args, 0, 0); err != nil {
				return err
			}
			var ans struct {
				Cluster loose `json:"cluster"`
				Members []struct {
					ID          loose            `json:"id"`
					Address     loose            `json:"address"`
					Status      loose            `json:"status"`
					Self        bool             `json:"self"`
					NodeID      loose            `json:"nodeId"`
					HTTP        loose            `json:"http"`
					Version     loose            `json:"version"`
					Uptime      float64          `json:"uptimeSeconds"`
					Grains      map[string]loose `json:"grains"`
					Connections loose            `json:"connections"`
				} `json:"members"`
			}
			if printed, err := e.adminCall(http.MethodGet, "/admin/cluster", &ans); err != nil || printed {
				return err
			}
			rows := [][]string{}
			for _, m := range ans.Members {
				id := e.short(m.ID.String())
				if m.Self {
					id += " *"
				}
				up := ""
				if m.Uptime > 0 {
					up = (time.Duration(m.Uptime) * time.Second).String()
				}
				rows = append(rows, []string{id, m.NodeID.String(), m.Address.String(), m.HTTP.String(), m.Status.String(),
					m.Grains["user"].String(), m.Grains["conversation"].String(), m.Connections.String(), up, m.Version.String()})
			}
			e.table([]string{"MEMBER", "NODE", "ADDRESS", "HTTP", "STATUS", "USERS", "CONVERSATIONS", "CONNECTIONS", "UPTIME", "VERSION"}, rows)
			return nil
		}
	})

var adminGrainsCmd = adminLeaf("grains", "[flags]", "the activated grains, cluster-wide or on one node",
	`Sorted by kind, then id; at most --limit (the endpoint's default 1000, at most 10000).`,
	func(fs *flag.FlagSet) func(e *env, args []string) error {
		kind := fs.String("kind", "", "user or conversation (default both)")
		node := fs.String("node", "", "a member id or node id (default every node)")
		limit := fs.Int("limit", 0, "at most this many grains")
		return func(e *env, args []string) error {
			if err := want(args, 0, 0); err != nil {
				return err
			}
			q := url.Values{}
			if *kind != "" {
				q.Set("kind", *kind)
			}
			if *node != "" {
				q.Set("node", *node)
			}
			if *limit > 0 {
				q.Set("limit", strconv.Itoa(*limit))
			}
			path := "/admin/grains"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			var ans struct {
				Grains []struct {
					Kind        loose `json:"kind"`
					ID          loose `json:"id"`
					Member      loose `json:"member"`
					NodeID      loose `json:"nodeId"`
					ActivatedAt loose `json:"activatedAt"`
					Mailbox     loose `json:"mailbox"`
				} `json:"grains"`
				Truncated   bool    `json:"truncated"`
				Unreachable []loose `json:"unreachable"`
			}
			if printed, err := e.adminCall(http.MethodGet, path, &ans); err != nil || printed {
				return err
			}
			rows := [][]string{}
			for _, g := range ans.Grains {
				rows = append(rows, []string{g.Kind.String(), g.ID.String(), g.NodeID.String(), e.short(g.Member.String()),
					g.ActivatedAt.when(), g.Mailbox.String()})
			}
			e.table([]string{"KIND", "ID", "NODE", "MEMBER", "ACTIVATED", "MAILBOX"}, rows)
			if ans.Truncated {
				fmt.Fprintln(e.err, "more grains were left out (--limit)")
			}
			if len(ans.Unreachable) > 0 {
				fmt.Fprintf(e.err, "members that did not answer: %s\n", joinLoose(ans.Unreachable))
			}
			return nil
		}
	})

func joinLoose(ls []loose) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = l.String()
	}
	return strings.Join(s, ", ")
}

// adminUser is GET /admin/users/{id}.
type adminUser struct {
	User          loose `json:"user"`
	Active        bool  `json:"active"`
	Member        loose `json:"member"`
	NodeID        loose `json:"nodeId"`
	ActivatedAt   loose `json:"activatedAt"`
	QueueHead     loose `json:"queueHead"`
	Contacts      loose `json:"contacts"`
	PendingPushes loose `json:"pendingPushes"`
	Presence      struct {
		Status   loose `json:"status"`
		LastSeen loose `json:"lastSeen"`
	} `json:"presence"`
	Devices []struct {
		Device loose `json:"device"`
		Cursor loose `json:"cursor"`
	} `json:"devices"`
	Connections []struct {
		Device  loose `json:"device"`
		Member  loose `json:"member"`
		NodeID  loose `json:"nodeId"`
		Address loose `json:"address"`
		Since   loose `json:"since"`
	} `json:"connections"`
}

var adminUserCmd = adminLeaf("user", "USER [flags]", "a user grain's state: queue head, devices and cursors, connections and their nodes, presence",
	`Read through the user's grain where it is active; an inactive user is read from
PostgreSQL without activating it ("active: false").`,
	func(fs *flag.FlagSet) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			if err := want(args, 1, 1); err != nil {
				return err
			}
			var u adminUser
			if printed, err := e.adminCall(http.MethodGet, "/admin/users/"+seg(args[0]), &u); err != nil || printed {
				return err
			}
			kv := [][2]string{{"user", u.User.String()}, {"active", strconv.FormatBool(u.Active)}}
			if u.Active {
				kv = append(kv, [2]string{"node", u.NodeID.String() + " (member " + e.short(u.Member.String()) + ")"},
					[2]string{"activated", u.ActivatedAt.when()})
			}
			kv = append(kv, [2]string{"queue head", u.QueueHead.String()},
				[2]string{"presence", strings.TrimSpace(u.Presence.Status.String() + " " + lastSeen(u.Presence.LastSeen))},
				[2]string{"contacts", u.Contacts.String()}, [2]string{"pending pushes", u.PendingPushes.String()})
			e.fields(kv)
			rows := [][]string{}
			for _, d := range u.Devices {
				rows = append(rows, []string{d.Device.String(), d.Cursor.String()})
			}
			fmt.Fprintln(e.out)
			e.table([]string{"DEVICE", "CURSOR"}, rows)
			rows = [][]string{}
			for _, c := range u.Connections {
				rows = append(rows, []string{c.Device.String(), c.NodeID.String(), e.short(c.Member.String()), c.Address.String(), c.Since.when()})
			}
			fmt.Fprintln(e.out)
			e.table([]string{"CONNECTION OF", "NODE", "MEMBER", "ADDRESS", "SINCE"}, rows)
			return nil
		}
	})

func lastSeen(l loose) string {
	s := l.when()
	if s == "" || s == "0" {
		return ""
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		s = clock(ms)
	}
	return "(last seen " + s + ")"
}

var adminConversationCmd = adminLeaf("conversation", "ID [flags]", "a conversation grain's state: members and their receipts and backlog, last message, version",
	`ID is a conversation id (dm:a:b, group:ID, channel:ID) or a group or channel id.
An inactive conversation is read from PostgreSQL without activating it.`,
	func(fs *flag.FlagSet) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			if err := want(args, 1, 1); err != nil {
				return err
			}
			var c struct {
				Conversation  loose `json:"conversation"`
				Type          loose `json:"type"`
				Active        bool  `json:"active"`
				Member        loose `json:"member"`
				NodeID        loose `json:"nodeId"`
				ActivatedAt   loose `json:"activatedAt"`
				LastMessageID loose `json:"lastMessageId"`
				Version       loose `json:"version"`
				SnapshotAge   loose `json:"snapshotAge"`
				MemberCount   loose `json:"memberCount"`
				Pending       loose `json:"pending"`
				Receipts      struct {
					DeliveredToAll loose `json:"deliveredToAll"`
					ReadByAll      loose `json:"readByAll"`
				} `json:"receipts"`
				Members []struct {
					User      loose `json:"user"`
					Delivered loose `json:"delivered"`
					Read      loose `json:"read"`
					Backlog   loose `json:"backlog"`
				} `json:"members"`
			}
			if printed, err := e.adminCall(http.MethodGet, "/admin/conversations/"+seg(args[0]), &c); err != nil || printed {
				return err
			}
			kv := [][2]string{{"conversation", c.Conversation.String()}, {"type", c.Type.String()}, {"active", strconv.FormatBool(c.Active)}}
			if c.Active {
				kv = append(kv, [2]string{"node", c.NodeID.String() + " (member " + e.short(c.Member.String()) + ")"},
					[2]string{"activated", c.ActivatedAt.when()})
			}
			kv = append(kv, [2]string{"last message", c.LastMessageID.String()}, [2]string{"version", c.Version.String()},
				[2]string{"snapshot age", c.SnapshotAge.String()}, [2]string{"members", c.MemberCount.String()},
				[2]string{"pending", c.Pending.String()},
				[2]string{"delivered to all", c.Receipts.DeliveredToAll.String()}, [2]string{"read by all", c.Receipts.ReadByAll.String()})
			e.fields(slices.DeleteFunc(kv, func(f [2]string) bool { return f[1] == "" }))
			if len(c.Members) > 0 {
				rows := [][]string{}
				for _, m := range c.Members {
					rows = append(rows, []string{m.User.String(), m.Delivered.String(), m.Read.String(), m.Backlog.String()})
				}
				fmt.Fprintln(e.out)
				e.table([]string{"MEMBER", "DELIVERED", "READ", "BACKLOG"}, rows)
			}
			return nil
		}
	})

var adminDisconnectCmd = adminLeaf("disconnect", "USER [flags]", "close every connection of a user, on every node",
	`The connections are closed with WebSocket close code 4001. --json prints {"closed":N}.`,
	func(fs *flag.FlagSet) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			if err := want(args, 1, 1); err != nil {
				return err
			}
			var ans struct {
				Closed loose `json:"closed"`
			}
			if printed, err := e.adminCall(http.MethodPost, "/admin/users/"+seg(args[0])+"/disconnect", &ans); err != nil || printed {
				return err
			}
			noun := "connections"
			if ans.Closed.String() == "1" {
				noun = "connection"
			}
			e.say("closed %s %s of %s", ans.Closed.String(), noun, args[0])
			return nil
		}
	})

var adminPassivateCmd = adminLeaf("passivate", "KIND ID [flags]", "stop a grain wherever it is active (user or conversation)",
	`The grain flushes first; the next request activates it again.
--json prints {"passivated":bool} (false: no node held it).`,
	func(fs *flag.FlagSet) func(e *env, args []string) error {
		return func(e *env, args []string) error {
			if err := want(args, 2, 2); err != nil {
				return err
			}
			var ans struct {
				Passivated bool `json:"passivated"`
			}
			path := "/admin/grains/" + seg(args[0]) + "/" + seg(args[1]) + "/passivate"
			if printed, err := e.adminCall(http.MethodPost, path, &ans); err != nil || printed {
				return err
			}
			if ans.Passivated {
				e.say("passivated %s %s", args[0], args[1])
			} else {
				e.say("%s %s was not active on any node", args[0], args[1])
			}
			return nil
		}
	})
