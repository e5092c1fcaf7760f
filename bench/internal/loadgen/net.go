package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// CheckLoopback accepts only http URLs whose host is in 127.0.0.0/8, localhost or
// ::1: the generator must never load anything but this machine.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("loadgen: -url %q: %v", raw, err)
	}
	if u.Scheme != "http" {
		return fmt.Errorf("loadgen: -url %q: the scheme must be http", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("loadgen: -url %q has no host", raw)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		return fmt.Errorf("loadgen: -url %q: refusing a host that is not loopback (only 127.0.0.0/8, localhost and ::1 are allowed)", raw)
	}
	return nil
}

// SplitURLs splits repeated and comma-separated -url values, trims them, drops a
// trailing slash and checks each with CheckLoopback.
func SplitURLs(vals []string) ([]string, error) {
	var out []string
	for _, v := range vals {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimRight(strings.TrimSpace(s), "/")
			if s == "" {
				continue
			}
			if err := CheckLoopback(s); err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadgen: no -url given")
	}
	return out, nil
}

// SourceIPs hands out local source addresses 127.0.0.(first+1) ..
// 127.0.0.(first+k) in turn; k = 0 means none (the kernel picks 127.0.0.1).
type SourceIPs struct {
	ips  []net.IP
	next atomic.Uint64
}

// NewSourceIPs returns the k addresses starting at 127.0.0.(2+offset), cycling
// within 127.0.0.2..127.0.0.254.
func NewSourceIPs(k, offset int) *SourceIPs {
	s := &SourceIPs{}
	for i := range k {
		s.ips = append(s.ips, net.IPv4(127, 0, 0, byte(2+(offset+i)%253)))
	}
	return s
}

// Next returns the next address, or nil when there are none.
func (s *SourceIPs) Next() net.IP {
	if s == nil || len(s.ips) == 0 {
		return nil
	}
	return s.ips[(s.next.Add(1)-1)%uint64(len(s.ips))]
}

// Len is the number of addresses.
func (s *SourceIPs) Len() int {
	if s == nil {
		return 0
	}
	return len(s.ips)
}

// Dialer returns a dial function bound to src (nil: any). The socket gets
// IP_BIND_ADDRESS_NO_PORT (the port is chosen at connect, per destination, so
// that each source address has its own port range) and SO_LINGER 0, so that
// closing it sends RST and leaves no TIME_WAIT.
func Dialer(src net.IP) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if src != nil {
				if serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1); serr != nil {
					return
				}
			}
			serr = unix.SetsockoptLinger(int(fd), unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		})
		if err != nil {
			return err
		}
		return serr
	}}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if src != nil {
			network = "tcp4" // a 127.0.0.x source needs an IPv4 destination
		}
		return d.DialContext(ctx, network, addr)
	}
}
