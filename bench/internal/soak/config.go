// Package soak is a long mixed load against a small Parley cluster on loopback,
// with a node SIGKILLed and started again at a fixed interval, that checks at the
// end that every acknowledged message sits in each recipient's sync queue exactly
// once, and that the nodes' summed RSS stays flat after the warm-up (a node's own
// RSS moves with the load the kills shift onto it; it is reported, not judged).
// bench/cmd/soak is its command; scripts/bench-scale.sh soak runs it.
//
// Run owns every process and goroutine it starts: the nodes (children of this
// process, killed with it), one goroutine per simulated user plus a reader per
// open WebSocket, the kill schedule and the memory sampler; all have ended when
// Run returns.
//
// # The load
//
//   - 1:1 pairs: both users send to each other at DMRate messages/s each.
//   - groups: Groups groups of Members users; each group gets GroupRate posts/s,
//     each from a random member.
//   - slow readers: Slow users, members of every group, who never send. Once their
//     connection is live they read at full speed for 10 s, then one frame per
//     SlowDelay for SlowFor (a slow spell), and so on. A spell lets the server's
//     socket buffer and then its outbound queue fill; past gateway.outboundBytes
//     the server closes the connection with 1013, which the reader sees once it
//     has read what the kernel held, and then it reconnects and syncs.
//   - reconnects: a share (ReconnectShare) of the 1:1 and group users close their
//     connection every ReconnectEvery (±50 %), cleanly or by a reset, stay away
//     for up to OfflineMax, and come back with a sync from their position.
//
// Every user keeps at most Window sends unanswered; a send is repeated with the
// same client id on each new connection, after an unavailable or rate_limited
// answer, and when it stays unanswered for ResendAfter. A user whose node dies
// reconnects to the next node, and goes back to its home node later.
package soak

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/parleychat/parley/bench/internal/loadgen"
	"github.com/parleychat/parley/internal/auth"
)

// Config is one soak run. The zero value of a field means its default.
type Config struct {
	NodeBin    string // the cmd/node binary (required)
	NodeConfig string // its cluster.yaml (required)
	Nodes      int    // nodes on loopback (default 3)
	// DatabaseURL is the nodes' PostgreSQL (required; loopback only).
	DatabaseURL string
	// CertDir holds cmd/parley-certs's ca.pem and node<i>.pem / node<i>-key.pem:
	// the nodes talk over mutual TLS; "" = plain gRPC (loopback allows it).
	CertDir string
	LogDir  string // node<i>.log is appended to by every process of slot i (required)
	// BasePort: node i (1-based) serves HTTP on 127.0.0.1:BasePort+i, admin on
	// BasePort+20+i and its membership health on BasePort+40+i (default 27100).
	BasePort    int
	TokenSecret string // the nodes' PARLEY_TOKEN_SECRET: tokens are minted here

	Duration      time.Duration // traffic time (default 30m)
	KillEvery     time.Duration // a node is SIGKILLed this often (default 5m; < 0 = never)
	RestartDelay  time.Duration // between the kill and the new process (default 2s)
	Warmup        time.Duration // RSS samples before this (from traffic start) are left out (default 5m, at most Duration/3)
	ProcWarmup    time.Duration // and a process's samples before it is this old (default Warmup, at most Nodes×KillEvery/3)
	SampleEvery   time.Duration // RSS sampling interval (default 10s)
	Drain         time.Duration // after Duration, the longest wait for unanswered sends (default 60s)
	ProgressEvery time.Duration // a progress line this often (default 30s)

	Pairs          int           // 1:1 pairs (default 100)
	DMRate         float64       // msgs/s each 1:1 user sends (default 1)
	Groups         int           // groups (default 4)
	Members        int           // members of each group, slow readers not counted (default 25)
	GroupRate      float64       // posts/s per group (default 10)
	GroupText      int           // bytes of a group post's text (default 1500)
	Slow           int           // slow readers (default 4)
	SlowDelay      time.Duration // a slow reader's pause after each frame in a slow spell (default 100ms)
	SlowFor        time.Duration // a slow spell's length (default 2m)
	ReconnectShare float64       // share of 1:1 and group users that reconnect now and then (default 0.25)
	ReconnectEvery time.Duration // their mean time between reconnects (default 90s)
	OfflineMax     time.Duration // the longest they stay away (default 5s)
	Window         int           // unanswered sends per user (default 8)
	ResendAfter    time.Duration // a send unanswered this long is written again (default 15s)
	VerifyPar      int           // queues read at once in the verification (default 8)

	Timeout time.Duration // bound on the whole run (default Duration + 30m)
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.Nodes, 3)
	def(&c.BasePort, 27100)
	def(&c.Pairs, 100)
	def(&c.Groups, 4)
	def(&c.Members, 25)
	def(&c.GroupText, 1500)
	def(&c.Slow, 4)
	def(&c.Window, 8)
	def(&c.VerifyPar, 8)
	defDur(&c.Duration, 30*time.Minute)
	defDur(&c.KillEvery, 5*time.Minute)
	defDur(&c.RestartDelay, 2*time.Second)
	defDur(&c.Warmup, min(5*time.Minute, c.Duration/3))
	// A restarted process is a fresh node: its users come back as they reconnect
	// (ReconnectEvery) and its grains as they are used, so it gets the run's warm-up
	// too, at most a third of its life (each node is killed every Nodes×KillEvery).
	if c.KillEvery > 0 {
		defDur(&c.ProcWarmup, min(c.Warmup, time.Duration(c.Nodes)*c.KillEvery/3))
	}
	defDur(&c.ProcWarmup, c.Warmup)
	defDur(&c.SampleEvery, 10*time.Second)
	defDur(&c.Drain, time.Minute)
	defDur(&c.ProgressEvery, 30*time.Second)
	defDur(&c.SlowDelay, 100*time.Millisecond)
	defDur(&c.SlowFor, 2*time.Minute)
	defDur(&c.ReconnectEvery, 90*time.Second)
	defDur(&c.OfflineMax, 5*time.Second)
	defDur(&c.ResendAfter, 15*time.Second)
	defDur(&c.Timeout, c.Duration+30*time.Minute)
	if c.DMRate == 0 {
		c.DMRate = 1
	}
	if c.GroupRate == 0 {
		c.GroupRate = 10
	}
	if c.ReconnectShare == 0 {
		c.ReconnectShare = 0.25
	}
}

// validate applies the defaults and checks the configuration.
func (c *Config) validate() error {
	c.defaults()
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf("soak: "+format, args...))
		}
	}
	check(c.NodeBin != "" && c.NodeConfig != "" && c.LogDir != "", "the node binary, its configuration and a log directory are required")
	check(c.Nodes >= 2 && c.Nodes <= 9, "nodes must be 2..9, not %d", c.Nodes)
	check(c.BasePort >= 1024 && c.BasePort+60 < 32768, "base port %d must leave its ports in 1024..32767 (below the ephemeral range)", c.BasePort)
	check(len(c.TokenSecret) >= auth.MinSecretBytes, "the token secret must have at least %d bytes", auth.MinSecretBytes)
	check(loopbackDSN(c.DatabaseURL) == nil, "database: %v", loopbackDSN(c.DatabaseURL))
	check(c.Pairs >= 0 && c.Groups >= 0 && c.Slow >= 0 && c.Pairs+c.Groups > 0, "there must be pairs or groups")
	check(c.Groups == 0 || c.Members >= 2, "a group needs at least 2 members")
	check(c.Members+c.Slow <= 500, "a group of %d members is over limits.maxGroupMembers' default (500)", c.Members+c.Slow)
	check(c.DMRate > 0 && c.GroupRate > 0, "rates must be positive")
	check(c.GroupText >= 16 && c.GroupText <= 4096, "group text must be 16..4096 bytes")
	check(c.ReconnectShare >= 0 && c.ReconnectShare <= 1, "the reconnect share must be 0..1")
	check(c.Window >= 1, "the window must be at least 1")
	return errors.Join(errs...)
}

// loopbackDSN accepts a postgres:// URL whose host is loopback (or a unix socket).
func loopbackDSN(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("want a postgres:// URL, got %q", dsn)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil // a unix socket
	}
	return loadgen.CheckLoopback("http://" + u.Host)
}

// slowSpell tells whether a slow reader live for d is in a slow spell.
func (c *Config) slowSpell(d time.Duration) bool {
	return d%(liveFastFor+c.SlowFor) >= liveFastFor
}

// nodeURL is node i's (0-based) base URL.
func (c *Config) nodeURL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", c.BasePort+1+i) }

func (c *Config) adminAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.BasePort+21+i) }

func (c *Config) memberAddr(i int) string { return fmt.Sprintf("127.0.0.1:%d", c.BasePort+41+i) }
