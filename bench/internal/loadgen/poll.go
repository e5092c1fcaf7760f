package loadgen

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readCoalesce is how long the poller waits after each round before it looks
// again. A wake-up costs more than a frame on a virtual machine (the context
// switches), so at high rates one wake-up must serve many frames; every
// measured latency may be up to this much longer than the node's.
const readCoalesce = 200 * time.Microsecond

// poller reads all of a worker's connections from one goroutine: epoll (level-
// triggered) tells which sockets have data, each gets one read(2) into its
// buffer, and every complete frame there is handled before the next socket.
//
// The loop waits in raw system calls (epoll_wait, then nanosleep for
// readCoalesce) that the Go runtime does not see. Parked in the scheduler
// (time.Sleep, Go's netpoller), the process goes idle, and each wake-up from
// idle costs several context switches (the netpoller's thread, a spinning
// thread, sysmon restarting its 20 µs ticks); in a system call the runtime
// knows of, sysmon keeps taking the processor back every tick. Unseen, the
// goroutine simply holds its processor while it waits (the other runs
// everything else), and the runtime's preemption signal ends a wait with EINTR
// when a GC needs it stopped.
//
// A connection is registered in the slot of its user index, which comes back
// with its events; a user has at most one connection at a time.
type poller struct {
	epfd  int
	slots []atomic.Pointer[lconn]

	mu      sync.Mutex // guards epfd's registrations against stop, and the loop's start
	started bool
	stopped atomic.Bool
	ended   chan struct{}
}

func newPoller(users int) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &poller{epfd: epfd, slots: make([]atomic.Pointer[lconn], users), ended: make(chan struct{})}, nil
}

// add registers c (its fd open, its buffer handled) and starts the loop the
// first time.
func (p *poller) add(c *lconn) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped.Load() {
		return errClosed
	}
	if !p.slots[c.idx].CompareAndSwap(nil, c) {
		return errors.New("loadgen: a user's previous connection is still registered")
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.idx)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
		p.slots[c.idx].CompareAndSwap(c, nil)
		return err
	}
	if !p.started {
		p.started = true
		go p.run()
	}
	return nil
}

// remove unregisters c; its fd must still be open.
func (p *poller) remove(c *lconn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped.Load() {
		_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	p.slots[c.idx].CompareAndSwap(c, nil)
}

// stopCheck is how often an idle loop looks whether it was stopped; it also
// bounds how long a wait holds its processor.
const stopCheck = 10 * time.Millisecond

func (p *poller) run() {
	defer close(p.ended)
	events := make([]unix.EpollEvent, 512)
	pause := unix.NsecToTimespec(int64(readCoalesce))
	for !p.stopped.Load() {
		n, err := rawEpollWait(p.epfd, events, int(stopCheck/time.Millisecond))
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			// An event of a connection closed meanwhile finds its slot empty, or the
			// user's next connection, which then reads (or finds nothing) on its own fd.
			if c := p.slots[ev.Fd].Load(); c != nil {
				c.readable()
			}
		}
		if n > 0 {
			rawNanosleep(&pause)
		}
	}
}

// stop ends the loop and closes epoll; every connection must be closed.
func (p *poller) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped.Swap(true) {
		return
	}
	if p.started {
		<-p.ended
	}
	_ = unix.Close(p.epfd)
}

// rawEpollWait is epoll_wait(2) (as epoll_pwait with no signal mask, which
// every Linux architecture has) without telling the runtime.
func rawEpollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(msec), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// rawNanosleep is nanosleep(2) without telling the runtime; an interrupted
// sleep is not resumed.
func rawNanosleep(ts *unix.Timespec) {
	_, _, _ = unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(ts)), 0, 0)
}
