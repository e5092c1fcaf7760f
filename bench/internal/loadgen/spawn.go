package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// A worker process reads its WorkerConfig as the first line of its stdin (so that
// a token secret never shows in a process list), then one line per release; it
// writes WorkerMsg lines to stdout. EOF on stdin (the parent went away) ends it.

// startWorker starts worker wc in this process (Procs == 1) or as a child.
func (r *runner) startWorker(ctx context.Context, wc WorkerConfig) error {
	var h handle
	var err error
	if r.cfg.Procs == 1 {
		h = r.startLocal(ctx, wc)
	} else {
		h, err = r.startChild(ctx, wc)
	}
	if h.abort != nil { // it runs: stop waits for it
		r.handles = append(r.handles, h)
		r.running++
	}
	return err
}

func (r *runner) startLocal(ctx context.Context, wc WorkerConfig) handle {
	release := make(chan struct{}, 8)
	wctx, cancel := context.WithCancel(ctx)
	go func() {
		err := RunWorker(wctx, wc, func(m WorkerMsg) { r.events <- event{worker: wc.Worker, msg: m} }, release)
		cancel()
		r.events <- event{worker: wc.Worker, exited: true, err: err}
	}()
	return handle{release: func() error { release <- struct{}{}; return nil }, abort: cancel}
}

func (r *runner) startChild(ctx context.Context, wc WorkerConfig) (handle, error) {
	build := r.cfg.WorkerCommand
	if build == nil {
		build = selfCommand
	}
	cmd, err := build(ctx, wc)
	if err != nil {
		return handle{}, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return handle{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return handle{}, err
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return handle{}, fmt.Errorf("loadgen: starting worker %d: %w", wc.Worker, err)
	}
	go r.readChild(wc.Worker, cmd, stdout)
	b, _ := json.Marshal(wc)
	h := childHandle(cmd, stdin)
	if _, err := stdin.Write(append(b, '\n')); err != nil {
		return h, fmt.Errorf("loadgen: configuring worker %d: %w", wc.Worker, err)
	}
	return h, nil
}

// readChild turns a child's output lines into events, then reports its end.
func (r *runner) readChild(worker int, cmd *exec.Cmd, stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var m WorkerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = WorkerMsg{Err: fmt.Sprintf("bad output line %q: %v", sc.Text(), err)}
		}
		r.events <- event{worker: worker, msg: m}
	}
	err := cmd.Wait()
	r.events <- event{worker: worker, exited: true, err: err}
}

// childHandle releases a child with a line on its stdin; abort closes stdin (the
// worker ends on EOF) and kills it 5 s later if it has not ended.
func childHandle(cmd *exec.Cmd, stdin io.WriteCloser) handle {
	var once sync.Once
	return handle{
		release: func() error { _, err := io.WriteString(stdin, "go\n"); return err },
		abort: func() {
			once.Do(func() {
				_ = stdin.Close()
				go func() {
					time.Sleep(5 * time.Second)
					_ = cmd.Process.Signal(syscall.SIGKILL)
				}()
			})
		},
	}
}

// selfCommand re-executes this program as a worker; the child dies with its
// parent (Pdeathsig).
func selfCommand(ctx context.Context, wc WorkerConfig) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-worker")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// ServeWorker is the body of a worker process: it reads its WorkerConfig from
// the first line of in, then runs it, taking one line of in per release and
// writing WorkerMsg lines to out.
func ServeWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return errors.New("loadgen: no worker configuration on stdin")
	}
	var wc WorkerConfig
	if err := json.Unmarshal(sc.Bytes(), &wc); err != nil {
		return fmt.Errorf("loadgen: bad worker configuration: %w", err)
	}
	for _, u := range wc.URLs {
		if err := CheckLoopback(u); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	release := make(chan struct{}, 8)
	go func() {
		for sc.Scan() {
			release <- struct{}{}
		}
		cancel()
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	report := func(m WorkerMsg) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(m)
	}
	err := RunWorker(ctx, wc, report, release)
	if err != nil {
		report(WorkerMsg{Err: err.Error()})
	}
	return err
}
