package soak

import (
	"context"
	"errors"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/parleychat/parley/client"
)

// rcvbufDial dials with SO_RCVBUF set to rcvbuf before the connect (so that the
// window the socket advertises follows it), or with the defaults when rcvbuf is
// 0: a slow reader's small buffer makes the server's outbound queue, not the
// kernel, hold what it has not read.
func rcvbufDial(rcvbuf int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf <= 0 {
			return nil
		}
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf) })
		return errors.Join(err, serr)
	}}
	return nd.DialContext
}

// closeCode is err's close code, or 0 when the connection ended without one.
func closeCode(err error) int {
	var ce client.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	return 0
}
