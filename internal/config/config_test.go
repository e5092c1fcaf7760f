package config

import (
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/parleychat/parley/internal/certs"
)

const (
	testURL        = "postgres://u@127.0.0.1:5432/parley_test"
	clusterYAML    = "../../cluster.yaml"
	clusterYAMLURL = "postgres://postgres@127.0.0.1:55432/parley?sslmode=disable"
)

// mustValid returns Default() with a database URL, which must be valid.
func mustValid(t *testing.T) Config {
	t.Helper()
	c := Default()
	c.Database.URL = testURL
	require.NoError(t, c.Validate())
	return c
}

// writeYAML writes body to a temporary file and returns its path.
func writeYAML(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cluster.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
	return path
}

// envMap is a lookup function over a fixed map.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestDefault(t *testing.T) {
	t.Run("valid with a database URL", func(t *testing.T) {
		mustValid(t)
	})
	t.Run("database.url is required", func(t *testing.T) {
		c := Default()
		err := c.Validate()
		require.Error(t, err)
		require.Equal(t, "database.url: required", err.Error())
	})
}

func TestDecodeYAML(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c Config)
	}{
		{
			name: "empty file keeps defaults",
			yaml: "",
			check: func(t *testing.T, c Config) {
				require.Equal(t, Default(), c)
			},
		},
		{
			name: "durations",
			yaml: "database:\n  batchDelay: 5ms\ngrains:\n  idleTimeout: 1h30m\nauth:\n  tokenTTL: 24h\n",
			check: func(t *testing.T, c Config) {
				require.Equal(t, 5*time.Millisecond, c.Database.BatchDelay)
				require.Equal(t, 90*time.Minute, c.Grains.IdleTimeout)
				require.Equal(t, 24*time.Hour, c.Auth.TokenTTL)
				require.Equal(t, 5*time.Second, c.Grains.RequestTimeout, "untouched key keeps its default")
			},
		},
		{
			name: "scalars in several sections",
			yaml: "cluster:\n  name: prod\n  port: 7000\nnode:\n  id: 12\n" +
				"database:\n  url: postgres://x/y\n  maxConns: 4\n" +
				"limits:\n  frameRate: 2.5\n  maxTextBytes: 100\n" +
				"listen:\n  admin: \"\"\nlog:\n  format: json\n",
			check: func(t *testing.T, c Config) {
				require.Equal(t, "prod", c.Cluster.Name)
				require.Equal(t, 7000, c.Cluster.Port)
				require.Equal(t, "127.0.0.1", c.Cluster.Host)
				require.Equal(t, 12, c.Node.ID)
				require.Equal(t, "postgres://x/y", c.Database.URL)
				require.Equal(t, int32(4), c.Database.MaxConns)
				require.Equal(t, 2.5, c.Limits.FrameRate)
				require.Equal(t, 100, c.Limits.MaxTextBytes)
				require.Equal(t, "", c.Listen.Admin)
				require.Equal(t, "json", c.Log.Format)
				require.Equal(t, "info", c.Log.Level)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			require.NoError(t, c.decodeFile(writeYAML(t, tt.yaml)))
			tt.check(t, c)
		})
	}
}

func TestDecodeYAMLErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"unknown top-level key", "clustre:\n  name: x\n", "field clustre not found"},
		{"unknown nested key", "limits:\n  maxTextByte: 10\n", "field maxTextByte not found"},
		{"bare number as duration", "database:\n  batchDelay: 2\n", "line 2: cannot unmarshal !!int `2` into time.Duration"},
		{"bad duration", "grains:\n  idleTimeout: soon\n", "soon"},
		{"int32 overflow", "database:\n  maxConns: 3000000000\n", "line 2"},
		{"wrong type", "node:\n  id: one\n", "one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := c.decodeFile(writeYAML(t, tt.yaml))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{
			name:  "nothing set",
			env:   nil,
			check: func(t *testing.T, c Config) { require.Equal(t, Default(), c) },
		},
		{
			name: "every variable",
			env: map[string]string{
				"DATABASE_URL":                 "postgres://env/db",
				"PARLEY_HTTP_ADDR":             "0.0.0.0:9000",
				"PARLEY_ADMIN_ADDR":            "127.0.0.1:9001",
				"PARLEY_NODE_ID":               "7",
				"PARLEY_CLUSTER_HOST":          "10.0.0.5",
				"PARLEY_CLUSTER_PORT":          " 6000 ",
				"PARLEY_TOKEN_SECRET":          "s3cret",
				"PARLEY_PREVIOUS_TOKEN_SECRET": "old",
				"PARLEY_TOKEN_SECRET_FILE":     "/run/secrets/parley",
				"PARLEY_ADMIN_TOKEN":           "adm",
				"PARLEY_ADMIN_PPROF":           "true",
				"PARLEY_LOG_LEVEL":             "debug",
			},
			check: func(t *testing.T, c Config) {
				require.Equal(t, "postgres://env/db", c.Database.URL)
				require.Equal(t, "0.0.0.0:9000", c.Listen.HTTP)
				require.Equal(t, "127.0.0.1:9001", c.Listen.Admin)
				require.Equal(t, 7, c.Node.ID)
				require.Equal(t, "10.0.0.5", c.Cluster.Host)
				require.Equal(t, 6000, c.Cluster.Port)
				require.Equal(t, "s3cret", c.Auth.TokenSecret)
				require.Equal(t, "old", c.Auth.PreviousTokenSecret)
				require.Equal(t, "/run/secrets/parley", c.Auth.TokenSecretFile)
				require.Equal(t, "adm", c.Admin.Token)
				require.True(t, c.Admin.Pprof)
				require.Equal(t, "debug", c.Log.Level)
			},
		},
		{
			name:  "empty admin address disables the admin listener",
			env:   map[string]string{"PARLEY_ADMIN_ADDR": ""},
			check: func(t *testing.T, c Config) { require.Equal(t, "", c.Listen.Admin) },
		},
		{
			name:  "negative node id",
			env:   map[string]string{"PARLEY_NODE_ID": "-1"},
			check: func(t *testing.T, c Config) { require.Equal(t, -1, c.Node.ID) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			require.NoError(t, c.ApplyEnv(envMap(tt.env)))
			tt.check(t, c)
		})
	}
}

func TestApplyEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"node id not a number", map[string]string{"PARLEY_NODE_ID": "abc"}, []string{"PARLEY_NODE_ID", `"abc"`}},
		{"empty port", map[string]string{"PARLEY_CLUSTER_PORT": ""}, []string{"PARLEY_CLUSTER_PORT"}},
		{"pprof not a bool", map[string]string{"PARLEY_ADMIN_PPROF": "yes please"}, []string{"PARLEY_ADMIN_PPROF"}},
		{
			name: "both reported",
			env:  map[string]string{"PARLEY_NODE_ID": "1.5", "PARLEY_CLUSTER_PORT": "http"},
			want: []string{"PARLEY_NODE_ID", "PARLEY_CLUSTER_PORT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			err := c.ApplyEnv(envMap(tt.env))
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantKey string // "" means valid
	}{
		{"node id lease", func(c *Config) { c.Node.ID = -1 }, ""},
		{"node id max", func(c *Config) { c.Node.ID = 1023 }, ""},
		{"node id too big", func(c *Config) { c.Node.ID = 1024 }, "node.id"},
		{"node id too small", func(c *Config) { c.Node.ID = -2 }, "node.id"},
		{"cluster port too big", func(c *Config) { c.Cluster.Port = 65536 }, "cluster.port"},
		{"cluster port negative", func(c *Config) { c.Cluster.Port = -1 }, "cluster.port"},
		{"cluster provider", func(c *Config) { c.Cluster.Provider = "consul" }, "cluster.provider"},
		{"cluster name", func(c *Config) { c.Cluster.Name = "" }, "cluster.name"},
		{"cluster host", func(c *Config) { c.Cluster.Host = "" }, "cluster.host"},
		{"automanaged", func(c *Config) { automanaged(c) }, ""},
		{"automanaged no port", func(c *Config) { automanaged(c); c.Cluster.Automanaged.Port = 0 }, "cluster.automanaged.port"},
		{"automanaged no peers", func(c *Config) { automanaged(c); c.Cluster.Automanaged.Peers = nil }, "cluster.automanaged.peers"},
		{"automanaged bad peer", func(c *Config) { automanaged(c); c.Cluster.Automanaged.Peers = []string{"x"} }, "cluster.automanaged.peers"},
		{"automanaged refresh", func(c *Config) { automanaged(c); c.Cluster.Automanaged.Refresh = 0 }, "cluster.automanaged.refresh"},
		{"automanaged settings ignored by local", func(c *Config) { c.Cluster.Automanaged.Port = -5 }, ""},
		{"zookeeper", func(c *Config) { c.Cluster.Provider = ProviderZooKeeper }, ""},
		{"zookeeper no servers", func(c *Config) { c.Cluster.Provider = ProviderZooKeeper; c.Cluster.ZooKeeper.Servers = nil }, "cluster.zookeeper.servers"},
		{"zookeeper session short", func(c *Config) {
			c.Cluster.Provider = ProviderZooKeeper
			c.Cluster.ZooKeeper.SessionTimeout = time.Second
		}, "cluster.zookeeper.sessionTimeout"},
		{"zookeeper base key", func(c *Config) { c.Cluster.Provider = ProviderZooKeeper; c.Cluster.ZooKeeper.BaseKey = "parley/" }, "cluster.zookeeper.baseKey"},
		{"max conns", func(c *Config) { c.Database.MaxConns = 0 }, "database.maxConns"},
		{"batch delay", func(c *Config) { c.Database.BatchDelay = -time.Millisecond }, "database.batchDelay"},
		{"batch max", func(c *Config) { c.Database.BatchMax = -1 }, "database.batchMax"},
		{"committers", func(c *Config) { c.Database.Committers = 0 }, "database.committers"},
		{"outbound bytes", func(c *Config) { c.Gateway.OutboundBytes = 100 }, "gateway.outboundBytes"},
		{"max contacts", func(c *Config) { c.Limits.MaxContacts = 0 }, "limits.maxContacts"},
		{"dead after", func(c *Config) { c.Presence.DeadAfter = 0 }, "presence.deadAfter"},
		{"grace", func(c *Config) { c.Presence.Grace = 0 }, "presence.grace"},
		{"receipt save delay below 0", func(c *Config) { c.Receipts.SaveDelay = -time.Second }, "receipts.saveDelay"},
		{"receipt save delay past a minute", func(c *Config) { c.Receipts.SaveDelay = 2 * time.Minute }, "receipts.saveDelay"},
		{"receipt tell delay below 0", func(c *Config) { c.Receipts.TellDelay = -time.Millisecond }, "receipts.tellDelay"},
		{"receipt tell delay past 10s", func(c *Config) { c.Receipts.TellDelay = 11 * time.Second }, "receipts.tellDelay"},
		{"away after", func(c *Config) { c.Presence.AwayAfter = 0 }, "presence.awayAfter"},
		{"push gather past a minute", func(c *Config) { c.Push.Gather = 2 * time.Minute }, "push.gather"},
		{"push poll too short", func(c *Config) { c.Push.Poll = time.Millisecond }, "push.poll"},
		{"push claim not past timeout", func(c *Config) { c.Push.Claim = c.Push.Timeout }, "push.claim"},
		{"push deadline", func(c *Config) { c.Push.Deadline = 0 }, "push.deadline"},
		{"push backoff max below min", func(c *Config) { c.Push.BackoffMax = c.Push.BackoffMin / 2 }, "push.backoffMax"},
		{"push workers", func(c *Config) { c.Push.Workers = 0 }, "push.workers"},
		{"push preview bytes", func(c *Config) { c.Push.PreviewBytes = 2000 }, "push.previewBytes"},
		{"webhook without a secret", func(c *Config) { c.Push.Webhook.URL = "https://gw.example/push" }, "push.webhook.secretFile"},
		{"webhook url", func(c *Config) { c.Push.Webhook.URL, c.Push.Webhook.Secret = "ftp://gw", "s" }, "push.webhook.url"},
		{"apns without its ids", func(c *Config) { c.Push.APNs.KeyFile = "key.p8" }, "push.apns"},
		{"webpush without a private key", func(c *Config) {
			c.Push.WebPush.PublicKey, c.Push.WebPush.Subscriber = "k", "mailto:ops@example.com"
		}, "push.webpush.privateKeyFile"},
		{"webpush subscriber", func(c *Config) { c.Push.WebPush.PublicKey, c.Push.WebPush.PrivateKey = "k", "p" }, "push.webpush.subscriber"},
		{"channel mentions off", func(c *Config) { c.Limits.ChannelMentions = 0 }, ""},
		{"channel mentions negative", func(c *Config) { c.Limits.ChannelMentions = -1 }, "limits.channelMentions"},
		{"channel mentions too many", func(c *Config) { c.Limits.ChannelMentions = 101 }, "limits.channelMentions"},
		{"http required", func(c *Config) { c.Listen.HTTP = "" }, "listen.http"},
		{"http no port", func(c *Config) { c.Listen.HTTP = "localhost" }, "listen.http"},
		{"http bad port", func(c *Config) { c.Listen.HTTP = "localhost:99999" }, "listen.http"},
		{"http named port", func(c *Config) { c.Listen.HTTP = ":http" }, "listen.http"},
		{"http all interfaces", func(c *Config) { c.Listen.HTTP = ":8080" }, ""},
		{"http ipv6", func(c *Config) { c.Listen.HTTP = "[::1]:8080" }, ""},
		{"admin disabled", func(c *Config) { c.Listen.Admin = "" }, ""},
		{"admin bad", func(c *Config) { c.Listen.Admin = "nope" }, "listen.admin"},
		{"admin same as http", func(c *Config) { c.Listen.Admin = c.Listen.HTTP }, "listen.admin"},
		{"both ephemeral", func(c *Config) { c.Listen.HTTP, c.Listen.Admin = "127.0.0.1:0", "127.0.0.1:0" }, ""},
		{"read header timeout", func(c *Config) { c.Listen.ReadHeaderTimeout = 0 }, "listen.readHeaderTimeout"},
		{"read timeout", func(c *Config) { c.Listen.ReadTimeout = 0 }, "listen.readTimeout"},
		{"read timeout below header timeout", func(c *Config) { c.Listen.ReadTimeout = 5 * time.Second }, "listen.readTimeout"},
		{"write timeout", func(c *Config) { c.Listen.WriteTimeout = -time.Second }, "listen.writeTimeout"},
		{"idle timeout", func(c *Config) { c.Listen.IdleTimeout = 0 }, "listen.idleTimeout"},
		{"max conns", func(c *Config) { c.Listen.MaxConns = 0 }, "listen.maxConns"},
		{"max conns one", func(c *Config) { c.Listen.MaxConns = 1 }, ""},
		// Finding 9: an admin listener others can reach needs a token.
		{"admin all interfaces without token", func(c *Config) { c.Listen.Admin = "0.0.0.0:8081" }, "admin.token"},
		{"admin empty host without token", func(c *Config) { c.Listen.Admin = ":8081" }, "admin.token"},
		{"admin routable without token", func(c *Config) { c.Listen.Admin = "10.0.0.5:8081" }, "admin.token"},
		{"admin host name without token", func(c *Config) { c.Listen.Admin = "admin.internal:8081" }, "admin.token"},
		{"admin ipv6 any without token", func(c *Config) { c.Listen.Admin = "[::]:8081" }, "admin.token"},
		{"admin all interfaces with token", func(c *Config) { c.Listen.Admin, c.Admin.Token = "0.0.0.0:8081", "t0ken" }, ""},
		{"admin localhost", func(c *Config) { c.Listen.Admin = "localhost:8081" }, ""},
		{"admin ipv6 loopback", func(c *Config) { c.Listen.Admin = "[::1]:8081" }, ""},
		{"admin 127.0.0.2", func(c *Config) { c.Listen.Admin = "127.0.0.2:8081" }, ""},
		{"short token secret", func(c *Config) { c.Auth.TokenSecret = "short" }, "auth.tokenSecret"},
		{"token secret ok", func(c *Config) { c.Auth.TokenSecret = strings.Repeat("k", 32) }, ""},
		{"token ttl", func(c *Config) { c.Auth.TokenTTL = -time.Second }, "auth.tokenTTL"},
		{"previous token secret", func(c *Config) {
			c.Auth.TokenSecret, c.Auth.PreviousTokenSecret = strings.Repeat("k", 32), strings.Repeat("p", 32)
		}, ""},
		{"short previous token secret", func(c *Config) {
			c.Auth.TokenSecret, c.Auth.PreviousTokenSecret = strings.Repeat("k", 32), "short"
		}, "auth.previousTokenSecret"},
		{"previous token secret alone", func(c *Config) { c.Auth.PreviousTokenSecret = strings.Repeat("p", 32) }, "auth.previousTokenSecret"},
		{"session cache ttl", func(c *Config) { c.Auth.SessionCacheTTL = 0 }, "auth.sessionCacheTTL"},
		{"session cache ttl long", func(c *Config) { c.Auth.SessionCacheTTL = 2 * time.Hour }, "auth.sessionCacheTTL"},
		{"session cache entries", func(c *Config) { c.Auth.SessionCacheEntries = 0 }, "auth.sessionCacheEntries"},
		{"bcrypt cost low", func(c *Config) { c.Auth.BcryptCost = 3 }, "auth.bcryptCost"},
		{"bcrypt cost high", func(c *Config) { c.Auth.BcryptCost = 32 }, "auth.bcryptCost"},
		{"bcrypt cost min", func(c *Config) { c.Auth.BcryptCost = 4 }, ""},
		{"hash concurrency", func(c *Config) { c.Auth.HashConcurrency = -1 }, "auth.hashConcurrency"},
		{"hash concurrency set", func(c *Config) { c.Auth.HashConcurrency = 2 }, ""},
		{"login limit off", func(c *Config) { c.Auth.LoginPerAddress = RateLimit{} }, ""},
		{"login rate", func(c *Config) { c.Auth.LoginPerAddress.Rate = 0 }, "auth.loginPerAddress.rate"},
		{"account burst", func(c *Config) { c.Auth.LoginPerAccount.Burst = -1 }, "auth.loginPerAccount.burst"},
		{"register rate", func(c *Config) { c.Auth.RegisterPerAddress.Rate = math.Inf(1) }, "auth.registerPerAddress.rate"},
		{"limiter entries", func(c *Config) { c.Auth.LimiterEntries = 0 }, "auth.limiterEntries"},
		{"exempt none", func(c *Config) { c.Auth.ExemptAddresses = nil }, ""},
		{"exempt bad", func(c *Config) { c.Auth.ExemptAddresses = []string{"10.0.0.0/33"} }, "auth.exemptAddresses"},
		{"exempt host name", func(c *Config) { c.Auth.ExemptAddresses = []string{"localhost"} }, "auth.exemptAddresses"},
		{"max frame", func(c *Config) { c.Limits.MaxFrameBytes = 0 }, "limits.maxFrameBytes"},
		{"max text", func(c *Config) { c.Limits.MaxTextBytes = 0 }, "limits.maxTextBytes"},
		{"text not below frame", func(c *Config) { c.Limits.MaxTextBytes = c.Limits.MaxFrameBytes }, "limits.maxTextBytes"},
		{"frame rate", func(c *Config) { c.Limits.FrameRate = 0 }, "limits.frameRate"},
		{"frame burst", func(c *Config) { c.Limits.FrameBurst = 0 }, "limits.frameBurst"},
		{"sync batch", func(c *Config) { c.Limits.SyncBatch = 0 }, "limits.syncBatch"},
		{"history max", func(c *Config) { c.Limits.HistoryMax = 0 }, "limits.historyMax"},
		{"history default", func(c *Config) { c.Limits.HistoryDefault = 0 }, "limits.historyDefault"},
		{"history default above max", func(c *Config) { c.Limits.HistoryDefault = 101 }, "limits.historyDefault"},
		{"history default equal max", func(c *Config) { c.Limits.HistoryDefault = 100 }, ""},
		{"request timeout", func(c *Config) { c.Grains.RequestTimeout = 0 }, "grains.requestTimeout"},
		{"idle timeout", func(c *Config) { c.Grains.IdleTimeout = 0 }, "grains.idleTimeout"},
		{"dedupe cache", func(c *Config) { c.Grains.DedupeCache = -1 }, "grains.dedupeCache"},
		{"workers", func(c *Config) { c.Gateway.Workers = 0 }, "gateway.workers"},
		{"read timeout", func(c *Config) { c.Gateway.ReadTimeout = 0 }, "gateway.readTimeout"},
		{"write timeout", func(c *Config) { c.Gateway.WriteTimeout = 0 }, "gateway.writeTimeout"},
		{"shutdown grace", func(c *Config) { c.Gateway.ShutdownGrace = 0 }, "gateway.shutdownGrace"},
		{"log level", func(c *Config) { c.Log.Level = "INFO" }, "log.level"},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, "log.format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustValid(t)
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantKey == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tt.wantKey+": "), "got %q", err)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default() // no database.url
	c.Node.ID = 2000
	c.Limits.MaxTextBytes = 0
	c.Limits.HistoryDefault = 500
	c.Auth.BcryptCost = 40
	c.Log.Format = "xml"
	c.Gateway.ReadTimeout = 0

	err := c.Validate()
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"node.id", "database.url", "auth.bcryptCost", "limits.maxTextBytes",
		"limits.historyDefault", "gateway.readTimeout", "log.format",
	}
	require.Len(t, lines, len(want), "got:\n%s", err)
	for i, key := range want {
		require.True(t, strings.HasPrefix(lines[i], key+": "), "line %d: %q", i, lines[i])
	}
	require.Contains(t, err.Error(), "limits.maxTextBytes: must be > 0")
}

func TestLoad(t *testing.T) {
	t.Run("no file, URL from env", func(t *testing.T) {
		t.Setenv("DATABASE_URL", testURL)
		c, err := Load("")
		require.NoError(t, err)
		require.Equal(t, testURL, c.Database.URL)
	})
	t.Run("env overrides file", func(t *testing.T) {
		t.Setenv("DATABASE_URL", testURL)
		t.Setenv("PARLEY_NODE_ID", "3")
		c, err := Load(writeYAML(t, "node:\n  id: 9\ncluster:\n  name: from-file\n"))
		require.NoError(t, err)
		require.Equal(t, 3, c.Node.ID)
		require.Equal(t, "from-file", c.Cluster.Name)
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
		require.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("unknown key", func(t *testing.T) {
		t.Setenv("DATABASE_URL", testURL)
		_, err := Load(writeYAML(t, "gateway:\n  worker: 3\n"))
		require.ErrorContains(t, err, "field worker not found")
	})
	t.Run("bad env", func(t *testing.T) {
		t.Setenv("DATABASE_URL", testURL)
		t.Setenv("PARLEY_CLUSTER_PORT", "x")
		_, err := Load("")
		require.ErrorContains(t, err, "PARLEY_CLUSTER_PORT")
	})
	t.Run("invalid result", func(t *testing.T) {
		t.Setenv("DATABASE_URL", testURL)
		_, err := Load(writeYAML(t, "limits:\n  historyMax: 10\n"))
		require.ErrorContains(t, err, "limits.historyDefault: must be <=")
	})
}

func TestClusterYAML(t *testing.T) {
	t.Run("loads", func(t *testing.T) {
		t.Setenv("DATABASE_URL", testURL)
		c, err := Load(clusterYAML)
		require.NoError(t, err)
		require.Equal(t, testURL, c.Database.URL)
	})
	t.Run("holds the defaults", func(t *testing.T) {
		c := Default()
		require.NoError(t, c.decodeFile(clusterYAML))
		want := Default()
		want.Database.URL = clusterYAMLURL
		require.Equal(t, want, c)
	})
	t.Run("lists every key", func(t *testing.T) {
		raw, err := os.ReadFile(clusterYAML)
		require.NoError(t, err)
		var doc map[string]map[string]any
		require.NoError(t, yaml.Unmarshal(raw, &doc))
		for _, key := range yamlKeys(reflect.TypeOf(Config{})) {
			section, field, _ := strings.Cut(key, ".")
			require.Contains(t, doc[section], field, "cluster.yaml lacks %s", key)
		}
	})
}

// yamlKeys lists the "section.key" paths of a two-level config struct.
func yamlKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		sec := t.Field(i)
		for j := range sec.Type.NumField() {
			keys = append(keys, sec.Tag.Get("yaml")+"."+sec.Type.Field(j).Tag.Get("yaml"))
		}
	}
	return keys
}

func automanaged(c *Config) {
	c.Cluster.Provider = ProviderAutomanaged
	c.Cluster.Automanaged.Port = 28001
	c.Cluster.Automanaged.Peers = []string{"127.0.0.1:28001", "127.0.0.1:28002"}
}

func TestApplyEnvLists(t *testing.T) {
	c := Default()
	env := map[string]string{
		"PARLEY_CLUSTER_PROVIDER":  "automanaged",
		"PARLEY_AUTOMANAGED_PORT":  "28001",
		"PARLEY_AUTOMANAGED_PEERS": "127.0.0.1:28001, 127.0.0.1:28002,,",
		"PARLEY_ZK_SERVERS":        "zk1:2181,zk2:2181",
	}
	require.NoError(t, c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }))
	require.Equal(t, ProviderAutomanaged, c.Cluster.Provider)
	require.Equal(t, 28001, c.Cluster.Automanaged.Port)
	require.Equal(t, []string{"127.0.0.1:28001", "127.0.0.1:28002"}, c.Cluster.Automanaged.Peers)
	require.Equal(t, []string{"zk1:2181", "zk2:2181"}, c.Cluster.ZooKeeper.Servers)
}

func TestValidateClusterTLS(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	require.NoError(t, certs.WriteDir(dir, "node1", "node2"))
	require.NoError(t, certs.WriteDir(other, "rogue"))
	node1, node2, rogue := certs.FilesIn(dir, "node1"), certs.FilesIn(dir, "node2"), certs.FilesIn(other, "rogue")
	withTLS := func(f certs.Files) func(c *Config) {
		return func(c *Config) { c.Cluster.TLS = TLS{Cert: f.Cert, Key: f.Key, CA: f.CA} }
	}
	tests := []struct {
		name    string
		mutate  func(c *Config)
		wantKey string // "" means valid
		want    string // in the message
	}{
		{"loopback without tls", func(c *Config) {}, "", ""},
		{"localhost without tls", func(c *Config) { c.Cluster.Host = "localhost" }, "", ""},
		{"ipv6 loopback without tls", func(c *Config) { c.Cluster.Host = "::1" }, "", ""},
		{"127.0.0.2 without tls", func(c *Config) { c.Cluster.Host = "127.0.0.2" }, "", ""},
		{"routable host without tls", func(c *Config) { c.Cluster.Host = "10.0.0.5" }, "cluster.tls", "not a loopback address"},
		{"all interfaces without tls", func(c *Config) { c.Cluster.Host = "0.0.0.0" }, "cluster.tls", "not a loopback address"},
		{"host name without tls", func(c *Config) { c.Cluster.Host = "node1.internal" }, "cluster.tls", "not a loopback address"},
		{"routable host with tls", func(c *Config) { withTLS(node1)(c); c.Cluster.Host = "10.0.0.5" }, "", ""},
		{"loopback with tls", withTLS(node2), "", ""},
		{"cert only", func(c *Config) { c.Cluster.TLS.Cert = node1.Cert }, "cluster.tls", "missing key, ca"},
		{"no ca", func(c *Config) { withTLS(node1)(c); c.Cluster.TLS.CA = "" }, "cluster.tls", "missing ca"},
		{"partial tls on a routable host", func(c *Config) { c.Cluster.Host = "10.0.0.5"; c.Cluster.TLS.Key = node1.Key },
			"cluster.tls", "missing cert, ca"},
		{"cert file missing", func(c *Config) { withTLS(node1)(c); c.Cluster.TLS.Cert = filepath.Join(dir, "absent.pem") },
			"cluster.tls.cert", "no such file"},
		{"key file missing", func(c *Config) { withTLS(node1)(c); c.Cluster.TLS.Key = filepath.Join(dir, "absent.pem") },
			"cluster.tls.cert", "no such file"},
		{"ca file missing", func(c *Config) { withTLS(node1)(c); c.Cluster.TLS.CA = filepath.Join(dir, "absent.pem") },
			"cluster.tls.ca", "no such file"},
		{"ca is not a certificate", func(c *Config) { withTLS(node1)(c); c.Cluster.TLS.CA = node1.Key },
			"cluster.tls.ca", "no PEM certificate"},
		{"key of another certificate", func(c *Config) { withTLS(node1)(c); c.Cluster.TLS.Key = node2.Key },
			"cluster.tls.cert", "private key does not match"},
		{"certificate of another ca", func(c *Config) { withTLS(node1)(c); c.Cluster.TLS.Cert, c.Cluster.TLS.Key = rogue.Cert, rogue.Key },
			"cluster.tls.cert", "not a member certificate of this CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustValid(t)
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantKey == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), tt.wantKey+": "), "got %q", err)
			require.Len(t, strings.Split(err.Error(), "\n"), 1, "one problem: %q", err)
			require.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestApplyEnvClusterTLS(t *testing.T) {
	c := Default()
	require.NoError(t, c.ApplyEnv(envMap(map[string]string{
		"PARLEY_CLUSTER_TLS_CERT": "/etc/parley/node.pem",
		"PARLEY_CLUSTER_TLS_KEY":  "/etc/parley/node-key.pem",
		"PARLEY_CLUSTER_TLS_CA":   "/etc/parley/ca.pem",
	})))
	require.Equal(t, TLS{Cert: "/etc/parley/node.pem", Key: "/etc/parley/node-key.pem", CA: "/etc/parley/ca.pem"}, c.Cluster.TLS)
	require.True(t, c.Cluster.TLS.Enabled())
	require.False(t, Default().Cluster.TLS.Enabled())
}

func TestRateLimitsFromYAML(t *testing.T) {
	c := Default()
	require.NoError(t, c.decodeFile(writeYAML(t, "auth:\n  loginPerAccount: {rate: 1.5, burst: 7}\n"+
		"  registerPerAddress: {burst: 0}\n  exemptAddresses: []\n  hashConcurrency: 3\n")))
	require.Equal(t, RateLimit{Rate: 1.5, Burst: 7}, c.Auth.LoginPerAccount)
	require.Equal(t, RateLimit{Rate: 0.17, Burst: 0}, c.Auth.RegisterPerAddress, "a key left out keeps its default")
	require.Equal(t, RateLimit{Rate: 0.17, Burst: 3}, c.Auth.LoginPerAddress)
	require.Empty(t, c.Auth.ExemptAddresses)
	require.Equal(t, 3, c.Auth.HashConcurrency)
}

func TestExemptPrefixes(t *testing.T) {
	a := Auth{ExemptAddresses: []string{"127.0.0.0/8", "::1/128", "192.0.2.7", "10.1.2.3/8"}}
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("10.0.0.0/8"),
	}, a.ExemptPrefixes())
}

func TestTokenSecretFile(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/var/lib/state")
	path, err := Auth{}.SecretFile()
	require.NoError(t, err)
	require.Equal(t, "/var/lib/state/parley/token-secret", path)
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/p")
	path, err = Auth{}.SecretFile()
	require.NoError(t, err)
	require.Equal(t, "/home/p/.local/state/parley/token-secret", path)
	path, err = Auth{TokenSecretFile: "/etc/parley/key"}.SecretFile()
	require.NoError(t, err)
	require.Equal(t, "/etc/parley/key", path)
}

// Finding 9: -check (Load) refuses PARLEY_ADMIN_ADDR=0.0.0.0:... with no token.
func TestLoadRefusesOpenAdmin(t *testing.T) {
	t.Setenv("DATABASE_URL", testURL)
	t.Setenv("PARLEY_ADMIN_ADDR", "0.0.0.0:18381")
	_, err := Load("")
	require.ErrorContains(t, err, "admin.token: required when listen.admin is not a loopback address")
	t.Setenv("PARLEY_ADMIN_TOKEN", "s3cret-admin")
	_, err = Load("")
	require.NoError(t, err)
}

func TestListenDefaults(t *testing.T) {
	l := Default().Listen
	require.Equal(t, 10*time.Second, l.ReadHeaderTimeout)
	require.Equal(t, 30*time.Second, l.ReadTimeout)
	require.Equal(t, 30*time.Second, l.WriteTimeout)
	require.Equal(t, 120*time.Second, l.IdleTimeout)
	require.Equal(t, 19000, l.MaxConns, "below the node's 20,000 open files")
	c := Default()
	require.NoError(t, c.decodeFile(writeYAML(t, "listen:\n  maxConns: 50\n  idleTimeout: 5s\n")))
	require.Equal(t, 50, c.Listen.MaxConns)
	require.Equal(t, 5*time.Second, c.Listen.IdleTimeout)
}
