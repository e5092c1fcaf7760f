package loadgen

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ListenerPIDs finds, for each node URL, the process listening on its port
// (from /proc/net/tcp{,6} and the processes' open sockets), so that -node-pid
// auto needs no pid.
func ListenerPIDs(urls []string) ([]int, error) {
	var pids []int
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, err
		}
		_, portText, err := net.SplitHostPort(u.Host)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %s has no port: %w", raw, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %s: bad port: %w", raw, err)
		}
		pid, err := listenerPID(port)
		if err != nil {
			return nil, fmt.Errorf("loadgen: finding the process behind %s: %w", raw, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

func listenerPID(port int) (int, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for inode := range listeningInodes(string(b), port) {
			inodes[inode] = true
		}
	}
	if len(inodes) == 0 {
		return 0, fmt.Errorf("nothing listens on port %d", port)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		fds, _ := os.ReadDir(p + "/fd")
		for _, fd := range fds {
			link, err := os.Readlink(p + "/fd/" + fd.Name())
			if err == nil && strings.HasPrefix(link, "socket:[") && inodes[link[len("socket:["):len(link)-1]] {
				return strconv.Atoi(filepath.Base(p))
			}
		}
	}
	return 0, fmt.Errorf("no visible process holds the socket listening on port %d", port)
}

// listeningInodes returns the inodes of the sockets in LISTEN state (0A) on port
// in a /proc/net/tcp table.
func listeningInodes(table string, port int) map[string]bool {
	out := map[string]bool{}
	for inode, p := range listeningByInode(table) {
		if p == port {
			out[inode] = true
		}
	}
	return out
}
