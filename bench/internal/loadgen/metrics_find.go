package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FindMetrics finds each node's /metrics (-metrics auto): the process listening
// on the node's URL, then the first of its listening ports that answers
// GET /metrics, trying first the HTTP port + 100 (scripts/cluster.sh's layout),
// then + 1 (`make run`'s), then the process's other ports. A node whose
// endpoint is not found gets HTTP port + 100 and a warning: the scrape will
// tell.
func FindMetrics(ctx context.Context, urls []string, token string) (found []string, warnings []string) {
	client := &http.Client{Timeout: time.Second}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%s: %v", raw, err))
			continue
		}
		port, err := strconv.Atoi(u.Port())
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("%s has no port", raw))
			continue
		}
		candidates := []int{port + 100, port + 1}
		if pid, err := listenerPID(port); err == nil {
			for _, p := range listeningPorts(pid) {
				if p != port && !slices.Contains(candidates, p) {
					candidates = append(candidates, p)
				}
			}
		}
		endpoint := ""
		for _, p := range candidates {
			try := "http://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(p)) + "/metrics"
			if ok, note := probeMetrics(ctx, client, try, token); ok {
				endpoint = try
				if note != "" {
					warnings = append(warnings, note)
				}
				break
			}
		}
		if endpoint == "" {
			endpoint = "http://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(port+100)) + "/metrics"
			warnings = append(warnings, fmt.Sprintf("%s: no port of its process answers GET /metrics; trying %s", raw, endpoint))
		}
		found = append(found, endpoint)
	}
	return found, warnings
}

// probeMetrics tells whether url serves Prometheus text (or refuses us for the
// lack of the admin token, which only the admin listener does: note says so).
func probeMetrics(ctx context.Context, client *http.Client, url, token string) (ok bool, note string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, ""
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, ""
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusOK:
		return strings.Contains(string(head), "# TYPE "), ""
	case http.StatusUnauthorized, http.StatusForbidden:
		return true, fmt.Sprintf("%s answers %s: set -admin-token (or PARLEY_ADMIN_TOKEN)", url, resp.Status)
	}
	return false, ""
}

// listeningPorts are the TCP ports pid listens on.
func listeningPorts(pid int) []int {
	inodes := map[string]bool{}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[link[len("socket:["):len(link)-1]] = true
		}
	}
	var ports []int
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for inode, port := range listeningByInode(string(b)) {
			if inodes[inode] && !slices.Contains(ports, port) {
				ports = append(ports, port)
			}
		}
	}
	slices.Sort(ports)
	return ports
}

// listeningByInode maps the inodes of the LISTEN sockets of a /proc/net/tcp
// table to their ports.
func listeningByInode(table string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil {
			out[f[9]] = int(p)
		}
	}
	return out
}
