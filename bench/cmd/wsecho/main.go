// Command wsecho is the bare gobwas/ws reference server for Parley's benchmarks,
// and the driver that measures it on loopback. The logic is in bench/internal/wsecho.
//
//	wsecho -serve 127.0.0.1:9000 [-life 30m]
//	wsecho -idle -conns 5000 [-hold 10s] [-src-ips 8] [-json r.json]
//	wsecho -echo -conns 100 -window 8 -size 64 -duration 5s [-json r.json]
//
// -idle and -echo start `wsecho -serve 127.0.0.1:0` as a child process, connect
// -conns clients to it (at most 19,000: one process holds at most 20,000 open
// files here), print a Markdown table and stop the child. The exit status is 1 if
// anything failed (a connection, an echo that differed, the server).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parleychat/parley/bench/internal/wsecho"
)

func main() {
	var (
		serve      string
		life       time.Duration
		idle, echo bool
		cfg        wsecho.Config
		jsonTo     string
	)
	flag.StringVar(&serve, "serve", "", "run the echo server on this loopback address (port 0 = a free one)")
	flag.DurationVar(&life, "life", 30*time.Minute, "with -serve: exit after this long")
	flag.BoolVar(&idle, "idle", false, "hold -conns idle connections and report the server's RSS per connection")
	flag.BoolVar(&echo, "echo", false, "echo traffic on -conns connections and report frames/s and round trips")
	flag.IntVar(&cfg.Conns, "conns", 100, fmt.Sprintf("client connections (1..%d)", wsecho.MaxConns))
	flag.IntVar(&cfg.SrcIPs, "src-ips", 8, "spread client sockets over 127.0.0.2..127.0.0.(1+K)")
	flag.IntVar(&cfg.Dialers, "dialers", 64, "concurrent connection setups")
	flag.DurationVar(&cfg.Hold, "hold", 10*time.Second, "with -idle: how long to hold the connections")
	flag.IntVar(&cfg.Window, "window", 8, "with -echo: frames in flight per connection")
	flag.IntVar(&cfg.Size, "size", 64, "with -echo: payload bytes per frame")
	flag.DurationVar(&cfg.Duration, "duration", 5*time.Second, "with -echo: traffic time")
	flag.StringVar(&jsonTo, "json", "", "also write the result as JSON to this file")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if serve != "" {
		if err := wsecho.ServeMain(ctx, serve, life, os.Stdout); err != nil {
			fatal(err)
		}
		return
	}
	switch {
	case idle == echo:
		fatal(fmt.Errorf("wsecho: give exactly one of -serve ADDR, -idle or -echo"))
	case idle:
		cfg.Mode = wsecho.ModeIdle
	default:
		cfg.Mode = wsecho.ModeEcho
	}
	os.Exit(drive(ctx, cfg, jsonTo))
}

// drive runs the driver, prints the table and returns the exit status.
func drive(ctx context.Context, cfg wsecho.Config, jsonTo string) int {
	res, err := wsecho.Run(ctx, cfg)
	if res != nil {
		fmt.Print(res.Markdown())
		if jsonTo != "" {
			if err := res.WriteJSON(jsonTo); err != nil {
				fmt.Fprintln(os.Stderr, "wsecho:", err)
				return 1
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if res.Failed() {
		fmt.Fprintln(os.Stderr, "wsecho: the run had failures (see the table)")
		return 1
	}
	return 0
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
