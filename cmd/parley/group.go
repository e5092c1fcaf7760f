package main

import (
	"flag"
	"net/http"
	"strings"

	"github.com/parleychat/parley/internal/convid"
)

// The group commands: create, add, remove, leave, show.

var groupCmd = &command{
	name: "group", args: "SUBCOMMAND", summary: "groups: create, add, remove, leave, show",
	help: `A group has an owner (its creator) and up to 500 members. Only the owner adds and
removes members; a member leaves by itself. Group ids are made by the server
(16 characters); "group:ID" is accepted too.`,
	subs: []*command{groupCreateCmd, groupAddCmd, groupRemoveCmd, groupLeaveCmd, groupShowCmd},
}

// groupJSON is a group as the REST API answers it.
type groupJSON struct {
	Group struct {
		ID      string   `json:"id"`
		Name    string   `json:"name"`
		Owner   string   `json:"owner"`
		Members []string `json:"members"`
	} `json:"group"`
}

var groupCreateCmd = &command{
	name: "create", args: "NAME [MEMBER...]", summary: "create a group (you are its owner)",
	help: `--json prints the server's answer: {"group":{"id","name","owner","members"}}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 1, -1)
			if err != nil {
				return err
			}
			body := map[string]any{"name": args[0], "members": append([]string{}, args[1:]...)}
			var g groupJSON
			raw, err := e.apiInto(s, http.MethodPost, "/v1/groups", body, &g)
			if err != nil {
				return err
			}
			return e.showGroup(raw, g)
		}
	},
}

var groupShowCmd = &command{
	name: "show", args: "ID", summary: "a group's name, owner and members",
	help: `--json prints the server's answer: {"group":{"id","name","owner","members"}}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 1, 1)
			if err != nil {
				return err
			}
			var g groupJSON
			raw, err := e.apiInto(s, http.MethodGet, "/v1/groups/"+seg(bareID(args[0], convid.Group)), nil, &g)
			if err != nil {
				return err
			}
			return e.showGroup(raw, g)
		}
	},
}

func (e *env) showGroup(raw []byte, g groupJSON) error {
	if e.g.json {
		e.printRaw(raw)
		return nil
	}
	e.fields([][2]string{
		{"group", g.Group.ID},
		{"name", g.Group.Name},
		{"owner", g.Group.Owner},
		{"members", strings.Join(g.Group.Members, ", ")},
	})
	return nil
}

var groupAddCmd = &command{
	name: "add", args: "ID USER...", summary: "add members (owner only)",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 2, -1)
			if err != nil {
				return err
			}
			id := bareID(args[0], convid.Group)
			for _, u := range args[1:] {
				if _, err := e.api(s, http.MethodPost, "/v1/groups/"+seg(id)+"/members", map[string]string{"user": u}); err != nil {
					return err
				}
				if !e.g.json {
					e.say("added %s to group %s", u, id)
				}
			}
			return nil
		}
	},
}

var groupRemoveCmd = &command{
	name: "remove", args: "ID USER...", summary: "remove members (owner only)",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			if err := want(args, 2, -1); err != nil {
				return err
			}
			id := bareID(args[0], convid.Group)
			return e.eachUser(args[1:], http.MethodDelete, "/v1/groups/"+seg(id)+"/members/", func(u string) string { return "removed " + u + " from group " + id })
		}
	},
}

var groupLeaveCmd = &command{
	name: "leave", args: "ID", summary: "leave a group (its owner cannot)",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 1, 1)
			if err != nil {
				return err
			}
			id := bareID(args[0], convid.Group)
			if _, err := e.api(s, http.MethodDelete, "/v1/groups/"+seg(id)+"/members/"+seg(s.User), nil); err != nil {
				return err
			}
			if !e.g.json {
				e.say("left group %s", id)
			}
			return nil
		}
	},
}
