package loadgen

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A connection's socket is owned by loadgen, not by Go's network poller: after
// the WebSocket handshake the descriptor is duplicated and the net.Conn closed,
// so that the runtime's poller (edge-triggered, one wake-up per arriving frame)
// no longer sees it and the worker's own poller (poll.go) reads it instead.

// errClosed is returned by writes on a closed connection.
var errClosed = errors.New("loadgen: use of a closed connection")

// adopt takes the socket of nc and closes nc; the returned descriptor is
// non-blocking (the flag belongs to the socket, which Go made non-blocking).
func adopt(nc net.Conn) (int, error) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("loadgen: %T has no descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("loadgen: duplicating the socket: %w", derr)
	}
	_ = nc.Close() // the socket lives on in fd
	return fd, nil
}

// WriteAll writes b to the non-blocking socket fd, waiting (at most until
// deadline) whenever its send buffer is full.
func WriteAll(fd int, b []byte, deadline time.Time) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			if err := waitWritable(fd, deadline); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		}
		b = b[n:]
	}
	return nil
}

func waitWritable(fd int, deadline time.Time) error {
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("loadgen: write: %w", errTimeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(fds, int(max(left/time.Millisecond, 1)))
		switch {
		case err == unix.EINTR:
		case err != nil:
			return err
		case n > 0:
			return nil
		}
	}
}

var errTimeout = errors.New("timed out")
