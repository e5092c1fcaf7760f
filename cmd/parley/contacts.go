package main

import (
	"flag"
	"net/http"
)

// The contacts commands: list, add, remove.

var contactsCmd = &command{
	name: "contacts", args: "[list | add USER... | remove USER...]", summary: "your contacts: list, add, remove",
	help: `Contacts are the users whose presence you see. Without a subcommand, list.`,
	subs: []*command{contactsListCmd, contactsAddCmd, contactsRemoveCmd},
	def:  "list",
}

var contactsListCmd = &command{
	name: "list", args: "[flags]", summary: "list your contacts, their status and last seen",
	help: `--json prints the server's answer: {"contacts":[{"id","displayName","status","lastSeen"}]}.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 0, 0)
			if err != nil {
				return err
			}
			var ans struct {
				Contacts []struct {
					ID          string `json:"id"`
					DisplayName string `json:"displayName"`
					Status      string `json:"status"`
					LastSeen    int64  `json:"lastSeen"`
				} `json:"contacts"`
			}
			raw, err := e.apiInto(s, http.MethodGet, "/v1/contacts", nil, &ans)
			if err != nil {
				return err
			}
			if e.g.json {
				e.printRaw(raw)
				return nil
			}
			rows := [][]string{}
			for _, c := range ans.Contacts {
				seen := ""
				if c.Status == "offline" && c.LastSeen > 0 {
					seen = clock(c.LastSeen)
				}
				rows = append(rows, []string{c.ID, c.DisplayName, c.Status, seen})
			}
			e.table([]string{"USER", "NAME", "STATUS", "LAST SEEN"}, rows)
			return nil
		}
	},
}

var contactsAddCmd = &command{
	name: "add", args: "USER...", summary: "add contacts",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			return e.eachUser(args, http.MethodPut, "/v1/contacts/", func(u string) string { return "added " + u + " to your contacts" })
		}
	},
}

var contactsRemoveCmd = &command{
	name: "remove", args: "USER...", summary: "remove contacts (not one is no error)",
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			return e.eachUser(args, http.MethodDelete, "/v1/contacts/", func(u string) string { return "removed " + u + " from your contacts" })
		}
	},
}

// eachUser calls method prefix+USER for each user, stopping at the first error.
// The calls answer 204: --json prints nothing.
func (e *env) eachUser(users []string, method, prefix string, done func(user string) string) error {
	s, err := e.sessionFor(users, 1, -1)
	if err != nil {
		return err
	}
	for _, u := range users {
		if _, err := e.api(s, method, prefix+seg(u), nil); err != nil {
			return err
		}
		if !e.g.json {
			e.say("%s", done(u))
		}
	}
	return nil
}
