// Package loadgen drives Parley nodes on loopback with authenticated WebSocket
// clients and measures them: connection setup rate, send-to-sent and
// send-to-delivery latency, deliveries/s, losses and errors, catch-up after a
// reconnect storm, and the nodes' RSS and CPU. bench/cmd/loadgen is its command.
//
// Run splits the clients over workers (in this process, or child processes
// when there are more than one) that each hold at most MaxConnsPerProc sockets.
// Every worker goes through the phases of its scenario (Phases) and waits after
// each for the parent's release, so that phases start together and the parent
// can sample the nodes between them; then Run merges the workers' results.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"time"

	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/convid"
)

// Config is one load run.
type Config struct {
	URLs     []string // node base URLs (loopback only); users go round robin
	Scenario string   // dm (default), group, idle, storm or channel
	Conns    int      // clients, one user each (group: Groups×Members, or 0; channel: Online, or 0)
	Groups   int      // group: the number of groups
	Members  int      // group: members per group; storm: clients per group plus its sender (default 500); channel: its members, owner included (default 100,000)
	Senders  int      // group: the senders of each group (default 1)
	Messages int      // storm: the messages each client misses (default 20)
	// Online (channel) is the members, the owner aside, that connect and follow the
	// channel live (default 19,000, at most Members-1); the others only have accounts.
	Online int
	// ChannelMode is the channel's mode, broadcast (default) or open.
	ChannelMode string
	// DatabaseURL, when set (channel), is the nodes' PostgreSQL (loopback or a
	// Unix socket): the rows written in the measured phase are read from its
	// pg_stat_user_tables, for the rows written per post.
	DatabaseURL string

	UsersPrefix string        // user names are <prefix>-<worker>-<i>; "" = a fresh random prefix
	Rate        float64       // messages/s in total (channel: posts/s); 0 = as fast as the in-flight window allows
	Window      int           // unanswered sends per sender when Rate is 0 (default 8)
	Duration    time.Duration // traffic or holding time; storm: the longest the reconnect may take
	Drain       time.Duration // how long to wait after Duration for answers and deliveries (default 5s; channel: twice, see channelDrain)
	// Settle (storm) is the least wait between posting and reconnecting, for the
	// fan-out to finish (default 1s); with NodePIDs the wait goes on until the
	// nodes are quiet.
	Settle  time.Duration
	Timeout time.Duration // the whole run; 0 = 10 min + 2×(Duration+Drain) + 5 ms per client

	Procs    int   // worker processes; 0 = as few as keep each within MaxConnsPerProc (1 = this process)
	SrcIPs   int   // source addresses 127.0.0.2.. per worker; 0 = the kernel's choice, -1 = one per 10k of a worker's clients
	NodePIDs []int // the nodes' pids, for RSS and CPU from /proc (summed)
	// PostgresPID is PostgreSQL's postmaster, whose processes' CPU time over the
	// measured phase the report gives (0: none). The machine's CPU time, steal
	// time included, is reported in any case.
	PostgresPID int
	// MetricsURLs are the nodes' GET /metrics endpoints (loopback only), scraped
	// just before and after the measured phase (see NodeMetrics); MetricsToken is
	// the admin listener's bearer token, if it needs one.
	MetricsURLs  []string
	MetricsToken string
	// SampleEvery, when positive, samples the nodes all through the measured
	// phase (RSS and CPU with NodePIDs, the Go heap with MetricsURLs); the
	// samples from Warmup on (default 2m) are summarized as Result.Steady.
	SampleEvery time.Duration
	Warmup      time.Duration
	Encoding    string // json (default) or proto
	RegisterPar int    // concurrent REST calls per worker (default 16)
	DialPar     int    // concurrent WebSocket dials per worker (default 64)
	// ReadEvery, when positive (dm only), makes every recipient acknowledge each
	// message with received, and every ReadEvery-th with read: the receipts load.
	ReadEvery int
	// Push, when set (dm only), makes the traffic one-way, from the first user of
	// each pair to the second, and the second registers a push target of this
	// provider (token: its user name); with PushOffline the second users do not
	// connect, so that every message makes a push (the push load).
	Push        string
	PushOffline bool
	// TokenSecret is the nodes' PARLEY_TOKEN_SECRET: tokens are minted here, not
	// logged in for (registration happens only where accounts are needed).
	TokenSecret string

	Progress io.Writer // the live progress line (nil = none)
	// WorkerCommand builds the child process of a worker when Procs > 1; nil
	// re-executes this program with -worker (see ServeWorker).
	WorkerCommand func(ctx context.Context, wc WorkerConfig) (*exec.Cmd, error)
}

func randomPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "lg" + hex.EncodeToString(b[:])
}

// validate fills defaults and checks the configuration.
func (cfg *Config) validate() error {
	urls, err := SplitURLs(cfg.URLs)
	if err != nil {
		return err
	}
	cfg.URLs = urls
	for _, u := range cfg.MetricsURLs {
		if err := CheckLoopback(u); err != nil {
			return fmt.Errorf("loadgen: -metrics: %w", err)
		}
	}
	if err := cfg.scenarioDefaults(); err != nil {
		return err
	}
	if cfg.DatabaseURL != "" {
		if err := checkDatabaseURL(cfg.DatabaseURL); err != nil {
			return err
		}
	}
	switch {
	case cfg.Conns < 1:
		return errors.New("loadgen: -conns must be at least 1")
	case cfg.Rate < 0:
		return errors.New("loadgen: -rate must not be negative")
	case cfg.Duration <= 0:
		return errors.New("loadgen: -duration must be positive")
	case cfg.SrcIPs > 253:
		return errors.New("loadgen: -src-ips must be at most 253")
	case (cfg.Push != "" || cfg.PushOffline) && cfg.Scenario != ScenarioDM:
		return errors.New("loadgen: -push and -push-offline are for -scenario dm")
	case cfg.PushOffline && cfg.Push == "":
		return errors.New("loadgen: -push-offline needs -push")
	case cfg.DatabaseURL != "" && (cfg.Scenario == ScenarioStorm || cfg.Scenario == ScenarioIdle):
		return errors.New("loadgen: -database-url is for the scenarios that send (dm, group, channel)")
	case cfg.TokenSecret != "" && len(cfg.TokenSecret) < auth.MinSecretBytes:
		return fmt.Errorf("loadgen: -token-secret must be at least %d bytes, like the nodes'", auth.MinSecretBytes)
	}
	cfg.timeDefaults()
	if cfg.Encoding == "" {
		cfg.Encoding = "json"
	}
	if err := cfg.procs(); err != nil {
		return err
	}
	if cfg.SrcIPs < 0 { // each address then carries at most 10k of a worker's sockets
		cfg.SrcIPs = min(253, (slices.Max(cfg.shares())+9999)/10000)
	}
	return cfg.checkNames()
}

func (cfg *Config) scenarioDefaults() error {
	if cfg.Scenario == "" {
		cfg.Scenario = ScenarioDM
	}
	if cfg.Scenario == ScenarioChannel {
		return cfg.channelDefaults()
	}
	if cfg.Members == 0 {
		cfg.Members = 500
	}
	cfg.Senders = max(1, cfg.Senders)
	switch cfg.Scenario {
	case ScenarioDM, ScenarioIdle:
	case ScenarioGroup:
		if cfg.Groups < 1 || cfg.Members < 2 || cfg.Senders > cfg.Members {
			return errors.New("loadgen: a group run needs -groups >= 1, -members >= 2 and -senders <= -members")
		}
		if cfg.Conns != 0 && cfg.Conns != cfg.Groups*cfg.Members {
			return fmt.Errorf("loadgen: -conns %d is not -groups × -members (%d); leave it out", cfg.Conns, cfg.Groups*cfg.Members)
		}
		cfg.Conns = cfg.Groups * cfg.Members
	case ScenarioStorm:
		if cfg.Members < 2 {
			return errors.New("loadgen: a storm needs -members >= 2 (a sender and a client per group)")
		}
		if cfg.Messages == 0 {
			cfg.Messages = 20
		}
		if cfg.Messages < 1 {
			return errors.New("loadgen: -messages must be at least 1")
		}
	default:
		return fmt.Errorf("loadgen: unknown -scenario %q (dm, group, idle, storm or channel)", cfg.Scenario)
	}
	return nil
}

func (cfg *Config) timeDefaults() {
	if cfg.Drain <= 0 {
		cfg.Drain = 5 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = time.Second
	}
	if cfg.Warmup <= 0 {
		cfg.Warmup = 2 * time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10*time.Minute + 2*(cfg.Duration+cfg.Drain) + time.Duration(cfg.Conns)*5*time.Millisecond
		if cfg.Scenario == ScenarioChannel { // every member registered, and the drain twice
			cfg.Timeout += time.Duration(cfg.Members)*2*time.Millisecond + cfg.Drain + 2*pgStatLag
		}
	}
}

// procs picks the number of workers and checks their shares.
func (cfg *Config) procs() error {
	if cfg.Scenario == ScenarioChannel {
		return cfg.channelProcs()
	}
	u := unit(cfg.Scenario, cfg.Members)
	units := (cfg.Conns + u - 1) / u
	if cfg.Procs <= 0 {
		cfg.Procs = autoProcs(cfg.Scenario, cfg.Conns, u, MaxConnsPerProc)
	}
	cfg.Procs = min(cfg.Procs, units)
	return checkShares(cfg.Scenario, split(cfg.Conns, cfg.Procs, u), u)
}

// checkNames makes sure the longest user name is a user id.
func (cfg *Config) checkNames() error {
	if cfg.UsersPrefix == "" {
		cfg.UsersPrefix = randomPrefix()
	}
	most := slices.Max(cfg.shares()) + cfg.Conns/max(1, cfg.Members-1)
	if cfg.Scenario == ScenarioChannel {
		most = slices.Max(cfg.channelUsers()) // the owner's index, or past every member's
	}
	longest := fmt.Sprintf("%s-%d-%d", cfg.UsersPrefix, cfg.Procs-1, most)
	if !convid.UserID.MatchString(longest) {
		return fmt.Errorf("loadgen: -users-prefix %q gives user names like %q, which are not valid user ids (%s)",
			cfg.UsersPrefix, longest, convid.UserID)
	}
	return nil
}

func (cfg *Config) shares() []int {
	if cfg.Scenario == ScenarioChannel {
		return split(cfg.Conns, cfg.Procs, 1)
	}
	return split(cfg.Conns, cfg.Procs, unit(cfg.Scenario, cfg.Members))
}

// workerConfigs divides the run over the workers.
func (cfg *Config) workerConfigs() []WorkerConfig {
	var runID [3]byte
	_, _ = rand.Read(runID[:])
	shares := cfg.shares()
	out := make([]WorkerConfig, cfg.Procs)
	for i := range out {
		out[i] = WorkerConfig{Worker: i, URLs: cfg.URLs, Scenario: cfg.Scenario, Conns: shares[i],
			Members: cfg.Members, Senders: cfg.Senders, Messages: cfg.Messages, UsersPrefix: cfg.UsersPrefix,
			RunID: hex.EncodeToString(runID[:]), Rate: cfg.Rate * float64(shares[i]) / float64(cfg.Conns),
			Window: cfg.Window, Duration: Dur(cfg.Duration), Drain: Dur(cfg.Drain), SrcIPs: cfg.SrcIPs,
			SrcOffset: i * cfg.SrcIPs, Encoding: cfg.Encoding, RegisterPar: cfg.RegisterPar, DialPar: cfg.DialPar,
			TokenSecret: cfg.TokenSecret, ReadEvery: cfg.ReadEvery, Push: cfg.Push, PushOffline: cfg.PushOffline}
	}
	if cfg.Scenario == ScenarioChannel {
		cfg.channelWorkers(out)
	}
	return out
}

// Run runs the load, prints progress, and returns the merged result. ctx (or
// Config.Timeout) ends it early, with an error; every worker has ended when it
// returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	r := newRunner(cfg)
	defer r.stop(cancel)
	for _, wc := range cfg.workerConfigs() {
		if err := r.startWorker(ctx, wc); err != nil {
			return nil, err
		}
	}
	for i, ph := range Phases(cfg.Scenario) {
		if i > 0 {
			if err := r.releaseAll(); err != nil {
				return nil, err
			}
		}
		if err := r.waitFor(ctx, ph); err != nil {
			return nil, err
		}
		if err := r.reached(ctx, ph); err != nil {
			return nil, err
		}
	}
	if err := r.waitExit(ctx); err != nil {
		return nil, err
	}
	return r.merge()
}
