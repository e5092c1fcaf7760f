package membership

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	"github.com/go-zookeeper/zk"
)

// watchdog notices that the other members dropped this one (research/providers.md
// §5). The provider registers an ephemeral znode; when its session expires (this
// member was cut off from ZooKeeper longer than the session timeout) the znode is
// deleted, every other member drops this member and blocks its id for good, and the
// provider silently registers again under the same id, which nobody re-admits.
// The watchdog records the znode (name and creation zxid) on its own connection
// and re-reads it: gone or re-created means evicted. An unreachable ZooKeeper is
// not eviction (a restarted server keeps the sessions); the watchdog waits.
type watchdog struct {
	servers        []string
	sessionTimeout time.Duration
	baseKey        string
	interval       time.Duration
	log            *slog.Logger
}

// registration is a member's znode.
type registration struct {
	path  string
	czxid int64
}

// findAttempts is how many answered reads must miss the registration at start
// before the member counts as already dropped.
const findAttempts = 10

// watch is Membership.Watch: it blocks until ctx ends (nil) or the registration of
// c's member vanished or was re-created (an error).
func (w *watchdog) watch(ctx context.Context, c *cluster.Cluster) error {
	host, port, err := splitHostPort(c.ActorSystem.Address())
	if err != nil {
		return fmt.Errorf("membership: member address: %w", err)
	}
	// The provider's naming: /<baseKey>/<cluster>/_c_<guid>-actor-<seq>, whose JSON
	// body has id "<cluster>@host:port".
	clusterKey := w.baseKey + "/" + c.Config.Name
	id := fmt.Sprintf("%s@%s:%d", c.Config.Name, host, port)
	return w.run(ctx, clusterKey, id)
}

func (w *watchdog) run(ctx context.Context, clusterKey, id string) error {
	log := w.log.With(slog.String("member", id))
	conn := w.connect(ctx, log)
	if conn == nil {
		return nil // ctx ended
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, conn.Close) // fails requests under way at once
	defer stop()

	tick := time.NewTicker(w.interval)
	defer tick.Stop()
	var (
		reg        registration
		misses     int
		downSince  time.Time // first failed read of the current outage
		warnedLong bool
	)
	for {
		var err error
		if reg.path == "" {
			var found bool
			reg, found, err = find(conn, clusterKey, id)
			if err == nil && !found {
				if misses++; misses >= findAttempts {
					return fmt.Errorf("membership: registration of %s not found under %s", id, clusterKey)
				}
			}
			if found {
				log.Info("membership: watching registration", slog.String("znode", reg.path), slog.Int64("czxid", reg.czxid))
			}
		} else {
			var exists bool
			var stat *zk.Stat
			exists, stat, err = conn.Exists(reg.path)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
			case !exists:
				return fmt.Errorf("membership: registration %s vanished (session expired; the other members dropped this one)", reg.path)
			case stat.Czxid != reg.czxid:
				return fmt.Errorf("membership: registration %s re-created (czxid %d, was %d; the other members dropped this one)",
					reg.path, stat.Czxid, reg.czxid)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil && downSince.IsZero():
			downSince = time.Now()
			log.Warn("membership: zookeeper unreachable; waiting", slog.Any("error", err))
		case err != nil && !warnedLong && time.Since(downSince) > w.sessionTimeout:
			warnedLong = true
			log.Warn("membership: zookeeper unreachable for longer than the session timeout; if only this node is cut off, the others have dropped it (it will leave once ZooKeeper answers)",
				slog.Duration("for", time.Since(downSince).Round(time.Millisecond)))
		case err == nil && !downSince.IsZero():
			log.Info("membership: zookeeper reachable again", slog.Duration("after", time.Since(downSince).Round(time.Millisecond)))
			downSince, warnedLong = time.Time{}, false
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// connect opens the watchdog's connection. It fails only when no server name
// resolves (zk.Connect itself does not wait for a server); that is retried too.
// It returns nil when ctx ends first.
func (w *watchdog) connect(ctx context.Context, log *slog.Logger) *zk.Conn {
	warned := false
	for {
		conn, _, err := zk.Connect(w.servers, w.sessionTimeout, zk.WithLogger(clientLogger(w.log, "watchdog")))
		if err == nil {
			return conn
		}
		if !warned {
			warned = true
			log.Warn("membership: zookeeper unreachable; waiting", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// find looks for the znode whose body carries member id under clusterKey; with
// several (a previous incarnation on the same address), the newest.
func find(conn *zk.Conn, clusterKey, id string) (reg registration, found bool, err error) {
	if _, err := conn.Sync(clusterKey); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return reg, false, err
	}
	children, _, err := conn.Children(clusterKey)
	if errors.Is(err, zk.ErrNoNode) {
		return reg, false, nil
	}
	if err != nil {
		return reg, false, err
	}
	bestSeq := int64(-1)
	for _, child := range children {
		path := clusterKey + "/" + child
		data, stat, err := conn.Get(path)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return reg, false, err
		}
		if memberID(data) != id {
			continue
		}
		if seq := sequence(child); seq > bestSeq {
			bestSeq, reg, found = seq, registration{path: path, czxid: stat.Czxid}, true
		}
	}
	return reg, found, nil
}

// memberID is the id in a registration's JSON body ("" if it has none).
func memberID(data []byte) string {
	var body struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &body) != nil {
		return ""
	}
	return body.ID
}

// sequence is the sequence number ZooKeeper appended to a znode name (-actor-<seq>),
// or 0.
func sequence(name string) int64 {
	seq, err := strconv.ParseInt(name[strings.LastIndex(name, "-")+1:], 10, 64)
	if err != nil {
		return 0
	}
	return seq
}

// splitHostPort splits a member address as the provider does.
func splitHostPort(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(p)
	return host, port, err
}
