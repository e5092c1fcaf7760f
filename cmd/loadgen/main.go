// Command loadgen drives Parley nodes on loopback with authenticated WebSocket
// clients exchanging 1:1 messages (or idle connections), and reports setup rate,
// latencies, throughput, errors and the node's RSS and CPU. The logic is in
// internal/loadgen.
//
//	loadgen -url http://127.0.0.1:8080 -conns 200 -rate 1000 -duration 10s [-procs 2 -src-ips 4 -node-pid PID -json r.json -md r.md]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/parleychat/parley/internal/loadgen"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var (
		urls   listFlag
		cfg    loadgen.Config
		worker string
		jsonTo string
		mdTo   string
	)
	flag.Var(&urls, "url", "node base URL, loopback only (repeat or comma-separate for a cluster)")
	flag.IntVar(&cfg.Conns, "conns", 100, "connections, one user each, paired for 1:1 traffic")
	flag.StringVar(&cfg.UsersPrefix, "users-prefix", "", "user name prefix (default: a fresh random one; reuse one to skip registration)")
	flag.Float64Var(&cfg.Rate, "rate", 100, "messages/s in total (0 = as fast as the in-flight window allows)")
	flag.IntVar(&cfg.Window, "window", 8, "unacknowledged sends per connection when -rate 0")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Second, "traffic (or idle holding) time")
	flag.DurationVar(&cfg.Drain, "drain", 5*time.Second, "how long to wait for acks and deliveries after -duration")
	flag.BoolVar(&cfg.Idle, "idle", false, "open the connections and hold them, no traffic")
	flag.IntVar(&cfg.Procs, "procs", 1, "split the connections over this many worker processes")
	flag.IntVar(&cfg.SrcIPs, "src-ips", 0, "spread client sockets over source addresses 127.0.0.2..127.0.0.(1+K)")
	flag.IntVar(&cfg.NodePID, "node-pid", 0, "the node's pid, to read its RSS and CPU from /proc")
	flag.StringVar(&cfg.Encoding, "encoding", "json", "frame encoding: json or proto")
	flag.IntVar(&cfg.RegisterPar, "register-par", 16, "concurrent registrations/logins per process (bcrypt is expensive)")
	flag.StringVar(&jsonTo, "json", "", "write the JSON result to this file")
	flag.StringVar(&mdTo, "md", "", "write the Markdown table to this file")
	flag.StringVar(&worker, "worker", "", "internal: run as a worker process with this configuration")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if worker != "" {
		if err := loadgen.ServeWorker(ctx, worker, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen worker:", err)
			os.Exit(1)
		}
		return
	}

	cfg.URLs = urls
	cfg.Progress = os.Stderr
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	md := res.Markdown()
	fmt.Print(md)
	if jsonTo != "" {
		if err := res.WriteJSON(jsonTo); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
	if mdTo != "" {
		if err := os.WriteFile(mdTo, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
	}
}
