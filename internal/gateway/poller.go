package gateway

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// poller reports read readiness of idle sockets through epoll, so that no goroutine
// is parked in Read per connection. Each fd is armed one-shot: after it fires, the
// worker that read it re-arms it. Each registration carries a tag that comes back
// with its events, so that an event still queued for a closed socket is told apart
// from one of a new socket that reuses the fd.
type poller struct {
	fd     int
	closed chan struct{}
	once   sync.Once
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &poller{fd: fd, closed: make(chan struct{})}, nil
}

const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func (p *poller) add(fd int, tag int32) error {
	return unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: armEvents, Fd: int32(fd), Pad: tag})
}

func (p *poller) rearm(fd int, tag int32) error {
	return unix.EpollCtl(p.fd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: armEvents, Fd: int32(fd), Pad: tag})
}

func (p *poller) remove(fd int) {
	_ = unix.EpollCtl(p.fd, unix.EPOLL_CTL_DEL, fd, nil)
}

// run calls ready for each fd that became readable, with its registration's tag,
// until close.
func (p *poller) run(ready func(fd int, tag int32)) {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.fd, events, 200)
		select {
		case <-p.closed:
			return
		default:
		}
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for i := range n {
			ready(int(events[i].Fd), events[i].Pad)
		}
	}
}

func (p *poller) close() {
	p.once.Do(func() {
		close(p.closed)
		_ = unix.Close(p.fd)
	})
}
