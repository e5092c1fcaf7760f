// Command fanceiling measures the loopback fan-out ceiling of this machine: one
// frame to each of -conns sockets per burst, at each of -rates bursts/s, written
// by this process and read by a child process (itself with -read), with nothing of
// Parley in between. It prints a Markdown table (the logic and the method are in
// bench/internal/fanceiling). One process holds at most 20,000 open files here, so
// -conns is at most 19,000.
//
//	fanceiling -conns 19000 -size 280 -rates 1,10,0 -duration 20s [-json r.json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/bench/internal/fanceiling"
)

func main() {
	var (
		cfg     fanceiling.Config
		rates   string
		read    string
		readers int
		jsonTo  string
	)
	flag.IntVar(&cfg.Conns, "conns", 19000, "sockets (1..19000)")
	flag.IntVar(&cfg.Size, "size", 280, "bytes per frame (>= 16; 280 is a JSON channel message frame as loadgen posts make it)")
	flag.StringVar(&rates, "rates", "1,10,0", "bursts/s per phase, comma-separated (0: as fast as the writers go)")
	flag.DurationVar(&cfg.Duration, "duration", 20*time.Second, "time per phase")
	flag.IntVar(&cfg.Writers, "writers", 0, "writer goroutines (0: GOMAXPROCS)")
	flag.IntVar(&readers, "readers", 0, "the reader's epoll workers (0: GOMAXPROCS)")
	flag.StringVar(&read, "read", "", "be the reader: connect to this address (the writer starts it)")
	flag.StringVar(&jsonTo, "json", "", "also write the phases as JSON to this file")
	flag.Parse()

	if read != "" {
		if err := fanceiling.Read(read, cfg.Conns, cfg.Size, readers, os.Stdin, os.Stdout); err != nil {
			fatal(err)
		}
		return
	}
	if cfg.Conns < 1 || cfg.Conns > 19000 {
		fatal(fmt.Errorf("fanceiling: -conns must be 1..19000"))
	}
	for _, f := range strings.Split(rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 0 {
			fatal(fmt.Errorf("fanceiling: bad rate %q", f))
		}
		cfg.Rates = append(cfg.Rates, r)
	}
	if cfg.Writers <= 0 {
		cfg.Writers = runtime.GOMAXPROCS(0)
	}
	var child *exec.Cmd
	spawn := func(addr string) (io.WriteCloser, io.Reader, error) {
		child = exec.Command(os.Args[0], "-read", addr, "-conns", strconv.Itoa(cfg.Conns),
			"-size", strconv.Itoa(cfg.Size), "-readers", strconv.Itoa(readers))
		child.Stderr = os.Stderr
		in, err := child.StdinPipe()
		if err != nil {
			return nil, nil, err
		}
		out, err := child.StdoutPipe()
		if err != nil {
			return nil, nil, err
		}
		return in, out, child.Start()
	}
	phases, err := fanceiling.Run(cfg, spawn)
	if child != nil && child.Process != nil {
		_ = child.Process.Kill()
		_ = child.Wait()
	}
	if len(phases) > 0 {
		fmt.Print(fanceiling.Markdown(cfg, phases))
	}
	if jsonTo != "" {
		b, _ := json.MarshalIndent(phases, "", "  ")
		if werr := os.WriteFile(jsonTo, b, 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
