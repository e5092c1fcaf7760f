// Command parley is Parley's command-line tool: an account and its session, sending
// and listening, an interactive chat, history, contacts, groups and channels, and the
// operators' admin calls. docs/CLI.md is its full reference.
//
// Usage:
//
//	parley [global flags] COMMAND [SUBCOMMAND] [flags] [args]
//
// Commands:
//
//	signup USER          create an account and log in as it
//	login USER           log in; the session is kept in the config directory
//	logout               end the session on the server and forget it here
//	whoami               the session in use
//	send USER TEXT...    send a message (--group ID, --channel ID)
//	listen               print live messages until interrupted, --count N or --timeout
//	chat                 the interactive client
//	history USER         a conversation's messages (--group ID, --channel ID)
//	contacts             list, add, remove
//	group                create, add, remove, leave, show
//	channel              create, join, leave, show, post, history, list, add, remove
//	admin                cluster, grains, user, conversation, disconnect, passivate
//
// Flags go before or after the command's arguments; "--" ends them. Every command
// and subcommand takes --help. Global flags: --url (env PARLEY_URL, default
// http://127.0.0.1:8080, else the URL the session logged in to), --config DIR (env
// PARLEY_CONFIG), --as USER (env PARLEY_USER: which stored session), --json, -v.
//
// Sessions: login keeps one session per user under the config directory
// (os.UserConfigDir()/parley by default), as sessions/USER.json (mode 0600, in
// directories of mode 0700), and remembers the last user logged in as the current
// one. The token is never printed.
//
// Output: aligned tables for people; with --json the JSON the server answered, as it
// answered it (calls answered 204 print nothing), and for send and listen the
// protocol's frames: send prints its "sent" frame, listen one "message" frame per
// line. Errors go to stderr.
//
// Exit codes:
//
//	0  ok (listen: also when interrupted, or when --timeout ends a listen without --count)
//	1  error: network, server (unavailable, internal), rate limited
//	2  usage: a bad flag or argument, or the server refused the request as malformed
//	   (bad_request, too_large)
//	3  not logged in, or unauthorized (a session or admin token refused)
//	4  not found (an unknown user, group, channel or grain)
//	5  forbidden (not a member, not the owner)
//	6  conflict (signup: the name is taken)
//	7  timed out (listen --count N ended by --timeout; send without its answer: send
//	   again with the same --id)
//	130 interrupted (commands other than listen and chat)
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], streams{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}

// commands is the command table; each group's commands live in its own file.
var commands = []*command{
	signupCmd, loginCmd, logoutCmd, whoamiCmd,
	sendCmd, listenCmd, chatCmd, historyCmd,
	contactsCmd, groupCmd, channelCmd, adminCmd,
}
