package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// A command is a row of the command table: a leaf runs, a group (subs) dispatches
// to its subcommands.
type command struct {
	name    string
	args    string // the arguments' synopsis, e.g. "USER TEXT..."
	summary string // one line, for the lists
	help    string // more text for --help (optional)
	// setup registers the command's own flags on fs and returns what runs it,
	// with the positional arguments.
	setup func(e *env, fs *flag.FlagSet) func(args []string) error
	subs  []*command
	def   string // a group's subcommand when none is named
}

// streams are the process's standard files (a buffer each in tests).
type streams struct {
	in       io.Reader
	out, err io.Writer
}

// env is what a command runs with.
type env struct {
	ctx context.Context
	streams
	getenv func(string) string
	http   *http.Client
	g      globals
	adm    adminOpts
	path   string // "parley group create", for messages
}

// globals are the flags every command takes, before or after its name.
type globals struct {
	url     setFlag // the node's base URL
	config  setFlag // the config directory
	as      setFlag // which stored session (user)
	json    bool
	verbose bool
}

// setFlag is a string flag that knows whether it was given (or came from the
// environment), so that a default can yield to a stored value.
type setFlag struct {
	v   string
	set bool
}

func (f *setFlag) String() string     { return f.v }
func (f *setFlag) Set(s string) error { f.v, f.set = s, true; return nil }

// fromEnv starts f at the environment variable's value, if there is one, else def.
func (f *setFlag) fromEnv(getenv func(string) string, key, def string) {
	if v := getenv(key); v != "" {
		f.v, f.set = v, true
		return
	}
	f.v = def
}

const defaultURL = "http://127.0.0.1:8080"

// globalNames are the flags registerGlobals adds (help lists them apart).
var globalNames = []string{"url", "config", "as", "json", "v"}

func (g *globals) register(fs *flag.FlagSet) {
	fs.Var(&g.url, "url", "base `URL` of a node (env PARLEY_URL; default the session's, else "+defaultURL+")")
	fs.Var(&g.config, "config", "config `DIR` holding the sessions (env PARLEY_CONFIG; default os.UserConfigDir()/parley)")
	fs.Var(&g.as, "as", "use the stored session of `USER` (env PARLEY_USER; default the last login)")
	// Registered again on each command's flag set: the value so far is the default,
	// so that a flag given before the command's name stays set.
	fs.BoolVar(&g.json, "json", g.json, "print JSON (the server's answer) instead of tables")
	fs.BoolVar(&g.verbose, "v", g.verbose, "verbose: message ids, seqs and full member ids")
}

// exitError carries an exit code (see the package doc).
type exitError struct {
	code int
	err  error
	hint string // printed after the error (a usage error's synopsis)
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

const (
	exitOK          = 0
	exitError1      = 1
	exitUsage       = 2
	exitUnauthed    = 3
	exitNotFound    = 4
	exitForbidden   = 5
	exitConflict    = 6
	exitTimeout     = 7
	exitInterrupted = 130
)

func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// errHelp asks for the command's help on stdout (exit 0).
var errHelp = errors.New("help")

// run runs one command line and returns the process's exit code.
func run(ctx context.Context, args []string, s streams, getenv func(string) string) int {
	e := &env{ctx: ctx, streams: s, getenv: getenv, http: &http.Client{Timeout: 60 * time.Second}, path: "parley"}
	e.g.url.fromEnv(getenv, "PARLEY_URL", defaultURL)
	e.g.config.fromEnv(getenv, "PARLEY_CONFIG", "")
	e.g.as.fromEnv(getenv, "PARLEY_USER", "")
	root := &command{name: "parley", args: "COMMAND", summary: "Parley's command-line tool", subs: commands, help: rootHelp}
	err := e.dispatch(root, args)
	return e.finish(err)
}

// finish prints err and turns it into an exit code.
func (e *env) finish(err error) int {
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	if e.ctx.Err() != nil && code == exitError1 {
		code = exitInterrupted
	}
	fmt.Fprintf(e.err, "%s: %v\n", e.path, err)
	var x *exitError
	if errors.As(err, &x) && x.hint != "" {
		fmt.Fprint(e.err, x.hint)
	}
	return code
}

// dispatch parses c's flags and runs it, or hands the rest to a subcommand.
func (e *env) dispatch(c *command, args []string) error {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	e.g.register(fs)
	var runFn func([]string) error
	if c.setup != nil {
		runFn = c.setup(e, fs)
	}
	if c.subs != nil {
		// A group's flags come before the subcommand's name; the rest is the
		// subcommand's.
		if err := fs.Parse(args); err != nil {
			return e.flagError(c, fs, err)
		}
		rest := fs.Args()
		if len(rest) == 0 && c.def != "" {
			rest = []string{c.def}
		}
		if len(rest) == 0 {
			return e.withHint(c, usageErrorf("%s needs a subcommand", c.name))
		}
		if rest[0] == "help" {
			return e.dispatch(c, append(rest[1:], "--help"))
		}
		for _, sub := range c.subs {
			if sub.name == rest[0] {
				e.path += " " + sub.name
				return e.dispatch(sub, rest[1:])
			}
		}
		return e.withHint(c, usageErrorf("unknown command %q", rest[0]))
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return e.flagError(c, fs, err)
	}
	if err := runFn(pos); err != nil {
		if errors.Is(err, errHelp) {
			e.usage(e.out, c, fs)
			return nil
		}
		return e.withHint(c, err)
	}
	return nil
}

func (e *env) flagError(c *command, fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		e.usage(e.out, c, fs)
		return nil
	}
	return e.withHint(c, usageErrorf("%v", err))
}

// withHint adds c's synopsis to a usage error (the subcommands of a group).
func (e *env) withHint(c *command, err error) error {
	var x *exitError
	if !errors.As(err, &x) || x.code != exitUsage || x.hint != "" {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s %s\n", e.path, c.args)
	for _, s := range c.subs {
		fmt.Fprintf(&b, "  %-14s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(&b, "Run '%s --help' for more.\n", e.path)
	x.hint = b.String()
	return err
}

// parseInterspersed parses flags wherever they are among the arguments, until
// "--", and returns the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// usage prints c's help: its synopsis, subcommands or flags, and the global flags.
func (e *env) usage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: %s %s\n", e.path, c.args)
	if c.summary != "" {
		fmt.Fprintf(w, "\n%s.\n", c.summary)
	}
	if c.help != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.help))
	}
	if c.subs != nil {
		fmt.Fprintf(w, "\nCommands:\n")
		for _, s := range c.subs {
			fmt.Fprintf(w, "  %-14s %s\n", s.name, s.summary)
		}
		fmt.Fprintf(w, "\n'%s COMMAND --help' tells more about one.\n", e.path)
	}
	var own, global []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if slices.Contains(globalNames, f.Name) {
			global = append(global, f)
		} else {
			own = append(own, f)
		}
	})
	if len(own) > 0 {
		fmt.Fprintf(w, "\nFlags:\n")
		printFlags(w, own)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n")
	printFlags(w, global)
}

func printFlags(w io.Writer, flags []*flag.Flag) {
	for _, f := range flags {
		name, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		line := "  " + dash + f.Name
		if name != "" {
			line += " " + name
		}
		if described := slices.Contains(globalNames, f.Name); !described && f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintf(w, "%s\n      %s\n", line, usage)
	}
}

const rootHelp = `
Flags may come before or after a command's arguments; "--" ends them.

Exit codes:
  0    ok (listen: also when interrupted, or when --timeout ends it without --count)
  1    error: network, server (unavailable, internal), rate limited
  2    usage: a bad flag or argument, or the server found the request malformed
  3    not logged in, or unauthorized (a session or admin token refused)
  4    not found (an unknown user, group, channel or grain)
  5    forbidden (not a member, not the owner)
  6    conflict (signup: the name is taken)
  7    timed out (listen --count N ended by --timeout; send got no answer in time)
  130  interrupted

Sessions are kept in the config directory (--config, PARLEY_CONFIG, default
os.UserConfigDir()/parley), one per user; --as USER picks one. docs/CLI.md is the
full reference.`

// want checks the number of positional arguments.
func want(args []string, lo, hi int) error {
	if len(args) < lo {
		return usageErrorf("missing arguments")
	}
	if hi >= 0 && len(args) > hi {
		return usageErrorf("unexpected arguments: %s", strings.Join(args[hi:], " "))
	}
	return nil
}
