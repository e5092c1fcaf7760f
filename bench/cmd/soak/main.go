// Command soak runs a long mixed load against a Parley cluster it starts on
// loopback, SIGKILLs a node at a fixed interval and starts it again, and checks at
// the end that every acknowledged message is in each recipient's sync queue
// exactly once and that the nodes' RSS stays flat. scripts/bench-scale.sh soak
// builds what it needs and runs it; the logic is in bench/internal/soak.
//
// It exits 0 when every check passed, 1 when one failed (the summary says which),
// and 2 when the run could not be carried out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parleychat/parley/bench/internal/soak"
)

func main() {
	os.Exit(run())
}

func run() int {
	var cfg soak.Config
	var jsonTo, mdTo string
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.StringVar(&cfg.NodeBin, "node-bin", "bin/node", "the cmd/node binary")
	fs.StringVar(&cfg.NodeConfig, "node-config", "", "the nodes' cluster.yaml (required)")
	fs.IntVar(&cfg.Nodes, "nodes", 3, "nodes on loopback, 2..9")
	fs.StringVar(&cfg.DatabaseURL, "db", os.Getenv("DATABASE_URL"), "the nodes' PostgreSQL URL, loopback only (default $DATABASE_URL)")
	fs.StringVar(&cfg.CertDir, "certs", "", "cmd/parley-certs directory (ca.pem, node<i>.pem): mutual TLS between the nodes; \"\" = plain")
	fs.StringVar(&cfg.LogDir, "logs", "", "directory of the nodes' logs, node<i>.log (required)")
	fs.IntVar(&cfg.BasePort, "base-port", 27100, "node i serves HTTP on 127.0.0.1:base+i, admin on base+20+i, membership on base+40+i")
	fs.DurationVar(&cfg.Duration, "duration", 0, "traffic time (default 30m)")
	fs.DurationVar(&cfg.KillEvery, "kill-every", 0, "SIGKILL a node this often, then start it again (default 5m; negative = never)")
	fs.DurationVar(&cfg.RestartDelay, "restart-delay", 0, "between a kill and the node's new process (default 2s)")
	fs.DurationVar(&cfg.Warmup, "warmup", 0, "RSS samples from the first this of traffic are left out (default 5m, at most a third of -duration)")
	fs.DurationVar(&cfg.ProcWarmup, "proc-warmup", 0, "and each process's samples from its first this (default -warmup, at most a third of -nodes × -kill-every)")
	fs.DurationVar(&cfg.SampleEvery, "sample-every", 0, "RSS sampling interval (default 10s)")
	fs.DurationVar(&cfg.Drain, "drain", 0, "after the traffic, the longest wait for unanswered sends (default 1m)")
	fs.IntVar(&cfg.Pairs, "pairs", 0, "1:1 pairs (default 100)")
	fs.Float64Var(&cfg.DMRate, "dm-rate", 0, "msgs/s each 1:1 user sends (default 1)")
	fs.IntVar(&cfg.Groups, "groups", 0, "groups (default 4)")
	fs.IntVar(&cfg.Members, "members", 0, "members per group, slow readers not counted (default 25)")
	fs.Float64Var(&cfg.GroupRate, "group-rate", 0, "posts/s per group (default 10)")
	fs.IntVar(&cfg.GroupText, "group-text", 0, "bytes of a group post (default 1500)")
	fs.IntVar(&cfg.Slow, "slow", 0, "slow readers, members of every group (default 4)")
	fs.DurationVar(&cfg.SlowDelay, "slow-delay", 0, "a slow reader's pause after each frame in a slow spell (default 100ms)")
	fs.DurationVar(&cfg.SlowFor, "slow-for", 0, "a slow spell's length; spells come 10s apart (default 2m)")
	fs.Float64Var(&cfg.ReconnectShare, "reconnect-share", 0, "share of 1:1 and group users that reconnect now and then (default 0.25)")
	fs.DurationVar(&cfg.ReconnectEvery, "reconnect-every", 0, "their mean time between reconnects (default 90s)")
	fs.IntVar(&cfg.Window, "window", 0, "unanswered sends per user (default 8)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "bound on the whole run (default duration + 30m)")
	fs.StringVar(&jsonTo, "json", "", "write the result as JSON to this file")
	fs.StringVar(&mdTo, "md", "", "write the result as Markdown to this file")
	judge := fs.String("judge", "", "judge the RSS samples of this JSON result again (with -warmup, -proc-warmup) and print it; runs nothing")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg.TokenSecret = os.Getenv("PARLEY_TOKEN_SECRET") // not a flag: -h would print it
	if *judge != "" {
		return rejudge(*judge, cfg.Warmup, cfg.ProcWarmup)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := soak.Run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	md := res.Markdown()
	fmt.Print(md)
	if jsonTo != "" {
		if err := res.WriteJSON(jsonTo); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	if mdTo != "" {
		if err := os.WriteFile(mdTo, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	if !res.Pass {
		return 1
	}
	return 0
}

// rejudge prints the result in file judged again from its RSS samples.
func rejudge(file string, warmup, procWarmup time.Duration) int {
	b, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var res soak.Result
	if err := json.Unmarshal(b, &res); err != nil {
		fmt.Fprintln(os.Stderr, file+":", err)
		return 2
	}
	if len(res.RSS) == 0 {
		fmt.Fprintln(os.Stderr, file+": no RSS samples to judge")
		return 2
	}
	soak.Rejudge(&res, warmup, procWarmup)
	fmt.Print(res.Markdown())
	if !res.Pass {
		return 1
	}
	return 0
}
