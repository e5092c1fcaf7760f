// Command loadgen drives Parley nodes on loopback with authenticated WebSocket
// clients and reports setup rate, latencies, throughput, losses, errors and the
// nodes' RSS and CPU, as a live progress line, a Markdown table and JSON. The
// logic is in bench/internal/loadgen; run it with -h for the scenarios.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
)

const usage = `loadgen drives Parley nodes on loopback (only) and measures them.

Scenarios (-scenario):
  dm     -conns users in pairs send each other 1:1 messages at -rate msgs/s in all
         (0 = as fast as -window unanswered sends per sender allow) for -duration.
         A long run at a fixed rate with -sample-every 10s is the steady-state test:
         the nodes' RSS (-node-pid) and Go heap (-metrics) through the run, and
         their spread after -warmup.
  group  -groups groups of -members users, every member online; the first -senders
         of each group post at -rate (or with a -window). Deliveries to every member
         are timed and counted.
  idle   -conns connections opened and held for -duration. Each counts as set up
         once the server answered its sync: the node's connection actor attaches
         to the user grain before it reads any frame, so an answered sync means the
         connection is registered there (a failed attach closes the socket).
         Reports the setup rate and node RSS per connection (-node-pid).
  storm  -conns clients connect, sync (noting their cursor) and go offline; one
         sender per group of up to -members (the sender included) posts -messages
         messages; after the fan-out settles (-settle, then until the nodes are
         quiet when -node-pid is given), every client reconnects at once and syncs
         from its cursor. Reports the time from the first reconnect dial until all
         have caught up, the per-client catch-up distribution, and any message
         missing or repeated. On one node: -conns 2000 -members 500 -messages 20.
  channel  a -channel-mode channel of -members users (default 100,000, the owner
         included); -online of them (default 19,000) connect, each sends a channels
         frame whose answer must list the channel, and follow it live. The owner
         (found or made, then every member added, 1,000 per call, a few calls at a
         time) posts over its own WebSocket at -rate posts/s (default 10; 0 = as fast
         as -window unanswered posts allow) for -duration, then an end marker behind
         which every member's worker knows it has all it will get (up to 2×-drain).
         Each post's text carries its send time (Unix ns), so that post → delivery is
         timed by the wall clock in every worker process. Reports posts/s, deliveries
         and deliveries/s, p50/p99/max post → delivery, posts a member missed and
         duplicates (per member and post), prev gaps, node CPU per delivery and RSS,
         loadgen's CPU per frame, and with -database-url the rows written per post.
         With minted tokens, a channel an earlier run made with the same users
         (-users-prefix, sizes) is reused and registration skipped.
  (-idle is kept as another way to say -scenario idle.)

Authentication: without a token secret every user is registered (an existing one is
reused) and logged in, which costs the node one bcrypt hash each. With -token-secret
(default $PARLEY_TOKEN_SECRET), the same secret the nodes run with, loadgen mints
the tokens itself. The server still needs account rows for dm, group, storm and
channel (a 1:1 message, a group or channel member must be an existing user), so those scenarios
register users through POST /v1/users; start the nodes with auth.bcryptCost: 4 in
cluster.yaml to make that cheap, and raise -register-par. idle needs no accounts.

Node settings for heavy runs: limits.frameRate/frameBurst bound each connection's
frames/s, and limits.userSends each user's sends/s (a group sender at a high rate
needs more than the default 100/s of each). A channel run holds its members'
sockets idle for seconds while it reads PostgreSQL's statistics (-database-url):
give the nodes a presence.deadAfter past the run.

Rows written (-database-url, a loopback or Unix-socket DSN of the nodes' database):
pg_stat_user_tables' rows inserted, updated and deleted over the measured phase, per
message or post answered sent; each read waits 11 s first, as a backend reports its
counts up to 10 s late.

Sockets: each process holds at most ~19,000 (the open-file cap is 20,000), so
-procs 0 starts as many worker processes as needed; -src-ips spreads each
worker's sockets over its own 127.0.0.x source addresses. -dial-par bounds the
handshakes each worker has in flight (raise it for a harsher storm). Sockets are
closed with RST, so runs leave no TIME_WAIT behind.

Measurements besides the clients' own: the nodes' RSS and CPU from /proc
(-node-pid), per connection and per message; PostgreSQL's CPU (-pg-pid) and the
machine's, steal time included (other tenants' share of a shared machine), over the
measured phase; the nodes' GET /metrics before and
after the measured phase (-metrics, -admin-token): every parley_* histogram's
count, p50 and p99 and every parley_* counter's increase in that phase; and
loadgen's own CPU per frame received (its receive loop waits up to 200 µs between
reads, so that one wake-up serves many frames: a latency may read that much high).

The run bounds itself (-timeout), kills its worker processes when it ends, and
refuses any -url or -metrics URL that is not loopback.

Usage:
  loadgen -url http://127.0.0.1:8080 [-url ...] [-scenario dm|group|idle|storm|channel] [flags]

Examples:
  loadgen -url http://127.0.0.1:8080 -scenario idle -conns 19000 -node-pid auto -token-secret $S
  loadgen -url http://127.0.0.1:8080 -scenario group -groups 1 -members 500 -rate 200 -duration 10s -node-pid auto
  loadgen -url http://127.0.0.1:8080 -scenario storm -conns 50000 -messages 20 -node-pid auto -json storm.json
  loadgen -url http://127.0.0.1:8080 -scenario dm -conns 400 -rate 3000 -duration 10m -node-pid auto \
          -metrics auto -sample-every 10s -warmup 2m
  loadgen -url http://127.0.0.1:8080 -scenario channel -members 100000 -online 19000 -rate 10 -duration 20s \
          -node-pid auto -token-secret $S -users-prefix chan1 -database-url $DATABASE_URL

Flags:
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// options are the command line: the run, and where its result goes.
type options struct {
	cfg      loadgen.Config
	urls     listFlag
	pids     listFlag
	pgPID    string
	metrics  listFlag
	idle     bool
	worker   bool
	jsonTo   string
	mdTo     string
	pushSink string
	cpuTo    string
	set      map[string]bool // the flags given
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	c := &o.cfg
	fs.Var(&o.urls, "url", "node base URL, loopback only (repeat or comma-separate for a cluster)")
	fs.StringVar(&c.Scenario, "scenario", loadgen.ScenarioDM, "dm, group, idle, storm or channel")
	fs.BoolVar(&o.idle, "idle", false, "the same as -scenario idle")
	fs.IntVar(&c.Conns, "conns", 0, "clients, one user each (default 100; group: -groups × -members)")
	fs.IntVar(&c.Groups, "groups", 1, "group: the number of groups")
	fs.IntVar(&c.Members, "members", 0, "group: members per group; storm: clients per group plus its sender (default 500); channel: its members, the owner included (default 100000)")
	fs.IntVar(&c.Online, "online", 0, "channel: members that connect and follow it live (default 19000, at most -members - 1)")
	fs.StringVar(&c.ChannelMode, "channel-mode", loadgen.ChannelBroadcast, "channel: broadcast or open")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "the nodes' PostgreSQL (loopback or a Unix socket): rows written per message or post, from pg_stat_user_tables over the measured phase")
	fs.IntVar(&c.Senders, "senders", 1, "group: members of each group that send")
	fs.IntVar(&c.Messages, "messages", 20, "storm: messages each client misses")
	fs.StringVar(&c.UsersPrefix, "users-prefix", "", "user name prefix (default: a fresh random one)")
	fs.Float64Var(&c.Rate, "rate", 100, "messages/s in total (0 = as fast as the window allows); channel: posts/s (default 10)")
	fs.IntVar(&c.Window, "window", 8, "unanswered sends per sender when -rate 0 (and for the storm's posts)")
	fs.StringVar(&c.Push, "push", "", "dm: one-way traffic, the second user of each pair registering a push target of this provider (webhook, ...; token: its user name)")
	fs.BoolVar(&c.PushOffline, "push-offline", false, "with -push: the receiving users stay offline, so every message makes a push (the push load)")
	fs.StringVar(&o.pushSink, "push-sink", "", "serve a webhook push gateway on this loopback host:port for the run, answering every POST 204 (point the nodes' push.webhook.url at it)")
	fs.IntVar(&c.ReadEvery, "read-every", 0, "dm: every recipient acknowledges each message with received, and every N-th with read (the receipts load); 0 = no acknowledgements until the end")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "traffic or holding time; storm: the longest the reconnect may take")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "how long to wait for answers and deliveries after -duration (channel: up to twice)")
	fs.DurationVar(&c.Settle, "settle", time.Second, "storm: the least wait between posting and reconnecting")
	fs.DurationVar(&c.Timeout, "timeout", 0, "bound on the whole run (default 10m + 2×(duration+drain) + 5ms per client)")
	fs.IntVar(&c.Procs, "procs", 0, "worker processes (0 = as few as keep each under 19,000 sockets; 1 = in this process)")
	fs.IntVar(&c.SrcIPs, "src-ips", -1, "source addresses 127.0.0.x per worker (0 = the kernel's choice, -1 = one per 10k of a worker's clients)")
	fs.Var(&o.pids, "node-pid", "a node's pid for RSS and CPU from /proc (repeat for a cluster; \"auto\" = the processes listening on the -url ports)")
	fs.StringVar(&o.pgPID, "pg-pid", "", "PostgreSQL's postmaster pid, or :PORT for the process listening on that port: its and its children's CPU over the measured phase")
	fs.Var(&o.metrics, "metrics", "the nodes' GET /metrics URLs, scraped before and after the measured phase (repeat or comma-separate; \"auto\" = found from the -url processes' ports)")
	fs.StringVar(&c.MetricsToken, "admin-token", "", "the admin listener's bearer token for -metrics (default $PARLEY_ADMIN_TOKEN)")
	fs.DurationVar(&c.SampleEvery, "sample-every", 0, "sample the nodes' RSS/CPU (-node-pid) and Go heap (-metrics) this often through the measured phase (0 = not)")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Minute, "with -sample-every: the samples before this are left out of the steady-state summary")
	fs.StringVar(&c.Encoding, "encoding", "json", "frame encoding: json or proto")
	fs.IntVar(&c.RegisterPar, "register-par", 16, "concurrent REST calls per worker (registration, logins, groups)")
	fs.IntVar(&c.DialPar, "dial-par", 64, "concurrent WebSocket dials per worker")
	fs.StringVar(&c.TokenSecret, "token-secret", "", "the nodes' token secret: mint tokens instead of logging in (default $PARLEY_TOKEN_SECRET)")
	fs.StringVar(&o.jsonTo, "json", "", "write the JSON result to this file")
	fs.StringVar(&o.mdTo, "md", "", "write the Markdown table to this file")
	fs.StringVar(&o.cpuTo, "cpuprofile", "", "write this process's CPU profile to this file (with -procs 1 the workers run in it)")
	fs.BoolVar(&o.worker, "worker", false, "internal: run as a worker process (configuration on stdin)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, o.finish()
}

// finish applies the aliases and defaults that depend on other flags.
func (o *options) finish() error {
	c := &o.cfg
	if o.idle {
		c.Scenario = loadgen.ScenarioIdle
	}
	if c.Conns == 0 && c.Scenario != loadgen.ScenarioGroup && c.Scenario != loadgen.ScenarioChannel {
		c.Conns = 100
	}
	if c.Scenario == loadgen.ScenarioChannel && !o.set["rate"] {
		c.Rate = 10
	}
	if c.TokenSecret == "" {
		c.TokenSecret = os.Getenv("PARLEY_TOKEN_SECRET") // not a flag default: -h would print it
	}
	if c.MetricsToken == "" {
		c.MetricsToken = os.Getenv("PARLEY_ADMIN_TOKEN")
	}
	c.URLs = o.urls
	if err := o.metricsURLs(); err != nil {
		return err
	}
	for _, p := range o.pids {
		if p == "auto" {
			urls, err := loadgen.SplitURLs(o.urls)
			if err != nil {
				return err
			}
			pids, err := loadgen.ListenerPIDs(urls)
			if err != nil {
				return err
			}
			c.NodePIDs = append(c.NodePIDs, pids...)
			continue
		}
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return fmt.Errorf("loadgen: -node-pid %q is not a pid or auto", p)
		}
		c.NodePIDs = append(c.NodePIDs, pid)
	}
	if port, ok := strings.CutPrefix(o.pgPID, ":"); ok {
		pids, err := loadgen.ListenerPIDs([]string{"tcp://127.0.0.1:" + port})
		if err != nil {
			return fmt.Errorf("loadgen: -pg-pid %s: %w", o.pgPID, err)
		}
		c.PostgresPID = pids[0]
	} else if o.pgPID != "" {
		pid, err := strconv.Atoi(o.pgPID)
		if err != nil || pid <= 0 {
			return fmt.Errorf("loadgen: -pg-pid %q is not a pid or :PORT", o.pgPID)
		}
		c.PostgresPID = pid
	}
	return nil
}

// metricsURLs resolves -metrics: URLs as given, or "auto".
func (o *options) metricsURLs() error {
	for _, v := range o.metrics {
		for _, m := range strings.Split(v, ",") {
			switch m = strings.TrimSpace(m); m {
			case "":
			case "auto":
				urls, err := loadgen.SplitURLs(o.urls)
				if err != nil {
					return err
				}
				found, warnings := loadgen.FindMetrics(context.Background(), urls, o.cfg.MetricsToken)
				for _, w := range warnings {
					fmt.Fprintln(os.Stderr, "loadgen: -metrics auto:", w)
				}
				o.cfg.MetricsURLs = append(o.cfg.MetricsURLs, found...)
			default:
				o.cfg.MetricsURLs = append(o.cfg.MetricsURLs, m)
			}
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err == nil {
		err = o.run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// startCPUProfile profiles this process into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func (o *options) run(ctx context.Context) error {
	if o.worker {
		return loadgen.ServeWorker(ctx, os.Stdin, os.Stdout)
	}
	o.cfg.Progress = os.Stderr
	if o.cpuTo != "" {
		stop, err := startCPUProfile(o.cpuTo)
		if err != nil {
			return err
		}
		defer stop()
	}
	if o.pushSink != "" {
		stop, err := servePushSink(o.pushSink)
		if err != nil {
			return err
		}
		defer stop()
	}
	res, err := loadgen.Run(ctx, o.cfg)
	if err != nil {
		return err
	}
	md := res.Markdown()
	fmt.Print(md)
	if o.jsonTo != "" {
		if err := res.WriteJSON(o.jsonTo); err != nil {
			return err
		}
	}
	if o.mdTo != "" {
		return os.WriteFile(o.mdTo, []byte(md), 0o644)
	}
	return nil
}

// servePushSink answers every request on addr (loopback only) with 204: a push
// gateway that takes whatever it is sent. The nodes' metrics count the pushes.
func servePushSink(addr string) (stop func(), err error) {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("loadgen: -push-sink %q is not a loopback host:port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: -push-sink: %w", err)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}
