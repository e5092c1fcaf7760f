package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/cluster"
	zkprovider "github.com/asynkron/protoactor-go/cluster/clusterproviders/zk"
	"github.com/go-zookeeper/zk"

	"github.com/parleychat/parley/internal/config"
)

// probeTimeout bounds the reachability check at start: ZooKeeper must grant a
// session within it.
const probeTimeout = 5 * time.Second

// newZooKeeper registers members in ZooKeeper with Proto.Actor's zk provider, and
// watches this member's registration (see watchdog).
//
// Every process incarnation must have a fresh remote address: the provider's
// member id is "<cluster>@host:port", and a member id the others saw leave stays on
// their block list for good, so a process restarted on the same host:port would be
// shut out by some members and admitted by others (split views, grains activated
// twice). cluster.port 0, the default, gives an ephemeral port per process.
func newZooKeeper(cfg config.Cluster, log *slog.Logger) (*Membership, error) {
	zc := cfg.ZooKeeper
	if len(zc.Servers) == 0 {
		return nil, errors.New("membership: no zookeeper servers")
	}
	routeClientLogs(log)
	// The provider would panic in StartMember ("zk: could not connect to a
	// server"); a clear error early is better.
	if err := probe(zc.Servers, zc.SessionTimeout, clientLogger(log, "probe")); err != nil {
		return nil, err
	}
	if cfg.Port != 0 {
		log.Warn("membership: cluster.port is fixed; a node restarted on the same port after the others dropped it stays locked out until they restart (use port 0)",
			slog.Int("port", cfg.Port))
	}
	p, err := zkprovider.New(zc.Servers, zkprovider.WithBaseKey(zc.BaseKey), zkprovider.WithSessionTimeout(zc.SessionTimeout))
	if err != nil {
		return nil, fmt.Errorf("membership: zookeeper %s: %w", strings.Join(zc.Servers, ","), err)
	}
	w := &watchdog{servers: zc.Servers, sessionTimeout: zc.SessionTimeout, baseKey: providerBaseKey(zc.BaseKey),
		interval: 500 * time.Millisecond, log: log}
	return &Membership{Provider: p, Bind: func(*cluster.Cluster) {}, Watch: w.watch}, nil
}

// probe opens a connection that must get a session within probeTimeout.
func probe(servers []string, sessionTimeout time.Duration, logger *zkLogger) error {
	where := strings.Join(servers, ",")
	conn, events, err := zk.Connect(servers, sessionTimeout, zk.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("membership: zookeeper %s unreachable: %w", where, err)
	}
	defer conn.Close()
	timeout := time.NewTimer(probeTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("membership: zookeeper %s unreachable: connection closed", where)
			}
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				return nil
			}
		case <-timeout.C:
			err := fmt.Errorf("membership: zookeeper %s unreachable: no session within %v", where, probeTimeout)
			if last := logger.lastFailure(); last != "" {
				err = fmt.Errorf("%w (%s)", err, last)
			}
			return err
		}
	}
}

// providerBaseKey is the base key as the provider normalises it (zk.WithBaseKey).
func providerBaseKey(key string) string {
	if key == "" {
		return "/protoactor"
	}
	if !strings.HasPrefix(key, "/") {
		key = "/" + key
	}
	if key != "/" {
		key = strings.TrimSuffix(key, "/")
	}
	return key
}

// zkLogger routes go-zookeeper's Printf lines into slog: its connection chatter
// (one line a second while a server is unreachable) at debug, anything else at warn.
type zkLogger struct {
	target atomic.Pointer[slog.Logger]
	last   atomic.Pointer[string] // the last connection failure, for probe's error
}

// noisy are the formats of go-zookeeper's connect/reconnect lines.
var noisy = []string{
	"connected to ", "failed to connect to ", "authentication failed: ", "authenticated: ",
	"recv loop terminated: ", "send loop terminated: ", "re-submitting ",
}

func (l *zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	level := slog.LevelWarn
	for _, p := range noisy {
		if strings.HasPrefix(format, p) {
			level = slog.LevelDebug
			break
		}
	}
	if strings.HasPrefix(format, "failed to connect to ") || strings.HasPrefix(format, "authentication failed: ") {
		l.last.Store(&msg)
	}
	if log := l.target.Load(); log != nil {
		log.Log(context.Background(), level, "zookeeper client", slog.String("detail", msg))
	}
}

func (l *zkLogger) lastFailure() string {
	if s := l.last.Load(); s != nil {
		return *s
	}
	return ""
}

func clientLogger(log *slog.Logger, conn string) *zkLogger {
	l := &zkLogger{}
	l.target.Store(log.With(slog.String("zk_conn", conn)))
	return l
}

var (
	defaultLogs     zkLogger
	defaultLogsOnce sync.Once
)

// routeClientLogs points go-zookeeper's package-level DefaultLogger, which the
// provider's own connection uses (the provider has no logger option), at log. The
// variable is set once, before the first connection; later calls only swap the
// target.
func routeClientLogs(log *slog.Logger) {
	defaultLogs.target.Store(log.With(slog.String("zk_conn", "provider")))
	defaultLogsOnce.Do(func() { zk.DefaultLogger = &defaultLogs })
}
