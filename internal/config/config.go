// Package config holds the settings of a Parley node: the Config struct, every
// default in one place ([Default]), loading from cluster.yaml and the
// environment ([Load]), and a [Config.Validate] that reports every problem at
// once, each under its YAML key path.
//
// Precedence, lowest first: [Default], the YAML file, environment variables
// (see [Config.ApplyEnv]). A Config is a plain value: copy it freely, and don't
// mutate one that other goroutines read.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Config is the whole configuration of one node. Its YAML form is documented,
// key by key, in the repository's cluster.yaml.
type Config struct {
	Cluster  Cluster  `yaml:"cluster"`
	Node     Node     `yaml:"node"`
	Database Database `yaml:"database"`
	Listen   Listen   `yaml:"listen"`
	Admin    Admin    `yaml:"admin"`
	Auth     Auth     `yaml:"auth"`
	Limits   Limits   `yaml:"limits"`
	Grains   Grains   `yaml:"grains"`
	Gateway  Gateway  `yaml:"gateway"`
	Presence Presence `yaml:"presence"`
	Receipts Receipts `yaml:"receipts"`
	Push     Push     `yaml:"push"`
	Log      Log      `yaml:"log"`
}

// Cluster configures cluster membership and the remote (node-to-node) transport.
type Cluster struct {
	// Name of the cluster; nodes join only a cluster of the same name. Default "parley".
	Name string `yaml:"name"`
	// Provider is the membership provider. Default "local": a single process
	// with no external server. "automanaged": several processes that poll each
	// other's health endpoints (a static peer list, no external server).
	// "zookeeper": membership in a ZooKeeper ensemble (production).
	Provider string `yaml:"provider"`
	// Host is the bind host of the remote transport (and of the automanaged
	// health endpoint). Default "127.0.0.1".
	Host string `yaml:"host"`
	// Port is the TCP port of the remote transport, 0..65535. Default 0
	// (ephemeral; every process incarnation then has a fresh member address).
	Port int `yaml:"port"`
	// TLS turns on mutual TLS on the remote transport. Required when Host is
	// not a loopback address. Default: off.
	TLS TLS `yaml:"tls"`
	// Automanaged configures the "automanaged" provider.
	Automanaged Automanaged `yaml:"automanaged"`
	// ZooKeeper configures the "zookeeper" provider.
	ZooKeeper ZooKeeper `yaml:"zookeeper"`
}

// TLS configures mutual TLS between members: a peer may use the remote port only
// with a certificate signed by CA, and this node verifies the members it dials the
// same way (against CA only, not against their address: see internal/certs). Set
// all three files or none; they are read at start (a restart picks up new ones).
type TLS struct {
	// Cert is the PEM file of this node's certificate (leaf first, then any
	// intermediates), for both TLS server and client use. Env: PARLEY_CLUSTER_TLS_CERT.
	Cert string `yaml:"cert"`
	// Key is the PEM file of Cert's private key. Env: PARLEY_CLUSTER_TLS_KEY.
	Key string `yaml:"key"`
	// CA is the PEM file of the CA that signs the members' certificates; it must
	// sign nothing else. Env: PARLEY_CLUSTER_TLS_CA.
	CA string `yaml:"ca"`
}

// Enabled reports whether any TLS file is set (Validate requires all of them).
func (t TLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.CA != "" }

// Automanaged configures membership by polling a static list of peers.
type Automanaged struct {
	// Port of this node's membership health endpoint (HTTP on cluster.host),
	// 1..65535. Required with provider "automanaged". Env: PARLEY_AUTOMANAGED_PORT.
	Port int `yaml:"port"`
	// Peers are host:port of every node's health endpoint, this node's
	// included; list nodes that may join later in advance. Env:
	// PARLEY_AUTOMANAGED_PEERS (comma-separated).
	Peers []string `yaml:"peers"`
	// Refresh is how often the peers are polled. Default 1s.
	Refresh time.Duration `yaml:"refresh"`
}

// ZooKeeper configures membership in ZooKeeper.
type ZooKeeper struct {
	// Servers are host:port of the ensemble. Default ["127.0.0.1:2181"].
	// Env: PARLEY_ZK_SERVERS (comma-separated).
	Servers []string `yaml:"servers"`
	// SessionTimeout: a member cut off from ZooKeeper longer than this is
	// dropped by the others (it then leaves and rejoins under a new member id).
	// 4s..40s with ZooKeeper's default tickTime. Default 10s.
	SessionTimeout time.Duration `yaml:"sessionTimeout"`
	// BaseKey is the znode under which members register. Default "/parley".
	BaseKey string `yaml:"baseKey"`
}

// Node identifies this process within the cluster.
type Node struct {
	// ID is the Snowflake node id, 0..1023, unique in the cluster. Default -1:
	// take a free id from the lease table in the database.
	ID int `yaml:"id"`
}

// Database configures the Postgres connection pool and the group-commit appender.
type Database struct {
	// URL is the Postgres connection string (URL or key=value form). Required;
	// no default. Environment: DATABASE_URL.
	URL string `yaml:"url"`
	// MaxConns is the maximum number of pooled connections. Default 16.
	MaxConns int32 `yaml:"maxConns"`
	// BatchDelay is how long a group commit waits for more writes before it starts;
	// 0 starts it at once (writes that arrive while commits are under way form the
	// next one). Default 0.
	BatchDelay time.Duration `yaml:"batchDelay"`
	// BatchMax is the maximum number of operations in one commit. Default 512.
	BatchMax int `yaml:"batchMax"`
	// Committers is how many group commits may be under way at once, 1..64; fewer
	// make bigger commits (less work per message for Postgres), more overlap their
	// waits. Default 1: on two cores shared with Postgres, one committer gave the
	// lowest 1:1 tail at 1,000-5,000 msgs/s and the same throughput at 10,000 and in
	// 500-member groups as four (docs/BENCHMARKS.md).
	Committers int `yaml:"committers"`
}

// Listen holds the network addresses served by the node, in host:port form, and
// the limits of their HTTP servers.
type Listen struct {
	// HTTP serves REST, WebSocket and health checks. Default "127.0.0.1:8080".
	HTTP string `yaml:"http"`
	// Admin serves the admin endpoint. Default "127.0.0.1:8081"; "" disables it.
	Admin string `yaml:"admin"`
	// ReadHeaderTimeout bounds reading a request's headers (a WebSocket
	// upgrade's too). Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	// ReadTimeout bounds reading a whole REST request, body included; a client
	// that trickles its body is cut. At least readHeaderTimeout. Default 30s.
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout bounds a REST request from the end of its headers to the end
	// of its answer (main listener only; the admin listener's profiles may take
	// longer). Default 30s.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// IdleTimeout closes a keep-alive connection that sends no new request
	// within it. Default 120s.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// MaxConns caps the connections of the main listener, REST and WebSocket
	// together; past it new connections wait in the kernel's backlog until one
	// closes. Keep it below the process's open-file limit (the node's is 20000).
	// 1..1000000. Default 19000.
	MaxConns int `yaml:"maxConns"`
	// ConnsPerAddress caps the connections of the main listener from one source
	// address (an IPv6 address counts by its /64), REST and WebSocket together;
	// one more is closed at once. auth.exemptAddresses are not counted. 0 = no
	// limit. Default 1000.
	ConnsPerAddress int `yaml:"connsPerAddress"`
}

// Admin configures the admin endpoint.
type Admin struct {
	// Token is the bearer token (Authorization header only) that every admin
	// call but /healthz requires. Default "": no token, which is refused unless
	// listen.admin is a loopback address. Env: PARLEY_ADMIN_TOKEN.
	Token string `yaml:"token"`
	// Pprof serves Go's profiles under /debug/pprof/ (CPU profile, trace,
	// goroutine dumps) on the admin listener. Default false. Env:
	// PARLEY_ADMIN_PPROF (true or false).
	Pprof bool `yaml:"pprof"`
}

// Auth configures passwords and access tokens.
type Auth struct {
	// TokenSecret is the HMAC key that signs access tokens, at least 32 bytes
	// when set. Default "": the key comes from TokenSecretFile. Every node of a
	// cluster must have the same key. Env: PARLEY_TOKEN_SECRET.
	TokenSecret string `yaml:"tokenSecret"`
	// PreviousTokenSecret is a key that no longer signs but is still accepted,
	// so that keys can rotate; it needs TokenSecret (the key file holds its own).
	// Default "". Env: PARLEY_PREVIOUS_TOKEN_SECRET.
	PreviousTokenSecret string `yaml:"previousTokenSecret"`
	// TokenSecretFile holds the keys when TokenSecret is not set: the current
	// key on its first line, optionally the previous one on the second. When the
	// file does not exist a fresh key is generated into it (mode 0600). Default
	// "": [DefaultTokenSecretFile]. Env: PARLEY_TOKEN_SECRET_FILE.
	TokenSecretFile string `yaml:"tokenSecretFile"`
	// TokenTTL is how long an access token stays valid. Default 720h (30 days).
	TokenTTL time.Duration `yaml:"tokenTTL"`
	// SessionCacheTTL is how long a node trusts the token generation it read for
	// a device; a logout (DELETE /v1/sessions/current) on another node takes up
	// to this long to reach it (on the same node it is at once). 1s..1h.
	// Default 10s.
	SessionCacheTTL time.Duration `yaml:"sessionCacheTTL"`
	// SessionCacheEntries bounds the devices whose generation a node caches,
	// 1..10000000. Default 65536.
	SessionCacheEntries int `yaml:"sessionCacheEntries"`
	// BcryptCost is the bcrypt work factor for new password hashes, 4..31.
	// Default 10.
	BcryptCost int `yaml:"bcryptCost"`
	// HashConcurrency is how many bcrypt hashes (logins, sign-ups) may run at
	// once; the others wait. 0..1024; 0 means GOMAXPROCS. Default 0.
	HashConcurrency int `yaml:"hashConcurrency"`
	// LoginPerAddress limits failed logins per source address (an IPv6 address
	// counts by its /64). A login is refused with 429 while the bucket is empty,
	// right password or not; a successful login gives its token back. Default
	// rate 0.17, burst 3.
	LoginPerAddress RateLimit `yaml:"loginPerAddress"`
	// LoginPerAccount limits failed logins per username, whatever their source.
	// Default rate 0.17, burst 3.
	LoginPerAccount RateLimit `yaml:"loginPerAccount"`
	// RegisterPerAddress limits sign-ups (POST /v1/users that pass the checks of
	// the body) per source address. Default rate 0.17, burst 3.
	RegisterPerAddress RateLimit `yaml:"registerPerAddress"`
	// RequestsPerAddress limits every REST request and WebSocket upgrade per
	// source address (429 rate_limited with Retry-After). Default rate 20, burst
	// 100.
	RequestsPerAddress RateLimit `yaml:"requestsPerAddress"`
	// LimiterEntries is how many addresses or usernames each of those limits
	// remembers, 1..10000000; past it the least recently seen is forgotten (and
	// starts again with a full burst). Default 100000.
	LimiterEntries int `yaml:"limiterEntries"`
	// ExemptAddresses are source prefixes (CIDR, or a bare address) that the
	// per-address limits do not apply to; the per-account limit still does.
	// Default ["127.0.0.0/8", "::1/128"]: a reverse proxy on the same host would
	// otherwise put every client in one bucket. [] limits loopback too.
	ExemptAddresses []string `yaml:"exemptAddresses"`
}

// RateLimit is a token bucket: Burst requests at once, refilled at Rate per
// second. Burst 0 turns the limit off.
type RateLimit struct {
	// Rate is the refill, in requests per second; > 0 when Burst is set.
	Rate float64 `yaml:"rate"`
	// Burst is how many requests may come at once, 0..1000000; 0 = no limit.
	Burst int `yaml:"burst"`
}

// Limits bounds what a client may send and ask for.
type Limits struct {
	// MaxFrameBytes is the largest WebSocket frame accepted, in bytes. Default 65536.
	MaxFrameBytes int `yaml:"maxFrameBytes"`
	// MaxTextBytes is the largest message text, in bytes (UTF-8); must be below
	// MaxFrameBytes. Default 4096.
	MaxTextBytes int `yaml:"maxTextBytes"`
	// FrameRate is the sustained rate of inbound frames per connection, in
	// frames per second. Default 100.
	FrameRate float64 `yaml:"frameRate"`
	// FrameBurst is the number of frames a connection may send above FrameRate
	// in a burst. Default 200.
	FrameBurst int `yaml:"frameBurst"`
	// SyncBatch is the maximum number of messages in one sync answer. Default 500.
	SyncBatch int `yaml:"syncBatch"`
	// HistoryMax is the largest history page a client may ask for, in
	// messages. Default 100.
	HistoryMax int `yaml:"historyMax"`
	// HistoryDefault is the history page size when the client gives none, in
	// messages; at most HistoryMax. Default 50.
	HistoryDefault int `yaml:"historyDefault"`
	// MaxGroupMembers is the largest group, owner included. Default 500.
	MaxGroupMembers int `yaml:"maxGroupMembers"`
	// MaxContacts is how many contacts one user may have. Default 5000.
	MaxContacts int `yaml:"maxContacts"`
	// MaxChannelMembers is the largest channel, owner included. Default 100000.
	MaxChannelMembers int `yaml:"maxChannelMembers"`
	// ChannelAddBatch is the most users one POST /v1/channels/{id}/members adds.
	// Default 1000.
	ChannelAddBatch int `yaml:"channelAddBatch"`
	// ChannelsPerUser is the most channels one user's channels answer lists and its
	// connections follow live. Default 1000.
	ChannelsPerUser int `yaml:"channelsPerUser"`
	// ChannelUnreadMax caps a channel's unread count (the count reads at most this
	// many messages). Default 1000.
	ChannelUnreadMax int `yaml:"channelUnreadMax"`
	// ChannelPosts bounds the posts of a plain member in an open channel (owner and
	// admins are bound by userSends only). Default rate 1/s, burst 5.
	ChannelPosts RateLimit `yaml:"channelPosts"`
	// ChannelMentions is the most members one post in an open channel mentions
	// (@user) into their sync queues, which makes a push for those with no device
	// online; 0: mentions do nothing. Default 10.
	ChannelMentions int `yaml:"channelMentions"`

	// Per-user budgets, whatever the number of the user's connections or nodes.
	//
	// SocketsPerUser is the most live connections one user may hold; one more is
	// closed with 1008. 0 = no limit. Default 32.
	SocketsPerUser int `yaml:"socketsPerUser"`
	// UserSends bounds a user's sends (split among its connections); a send past
	// it is answered error rate_limited. Default rate 100/s, burst 200.
	UserSends RateLimit `yaml:"userSends"`
	// UserReads bounds the entries a user's sync and history answers return (split
	// among its connections): past it, reads wait for the budget, and past 4
	// waiting on a connection they are answered rate_limited. Default rate
	// 5000/s, burst 20000.
	UserReads RateLimit `yaml:"userReads"`
	// GroupsCreated bounds the groups a user creates (REST 429 rate_limited).
	// Default rate 0.0056/s (20 an hour), burst 20.
	GroupsCreated RateLimit `yaml:"groupsCreated"`
	// ConversationsStarted bounds the direct conversations a user starts (a first
	// message to someone new; send answered rate_limited). Default rate 0.014/s
	// (50 an hour), burst 50.
	ConversationsStarted RateLimit `yaml:"conversationsStarted"`
	// TypingInterval is the shortest time between two typing notices of one user in
	// one conversation; those between are dropped. 0 = none dropped. Default 3s.
	TypingInterval time.Duration `yaml:"typingInterval"`
}

// Grains configures the virtual actors (users and conversations).
type Grains struct {
	// RequestTimeout bounds one request to a grain. Default 5s.
	RequestTimeout time.Duration `yaml:"requestTimeout"`
	// IdleTimeout is how long a grain may go without messages before it is
	// passivated. Default 10m.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// DedupeCache is how many client message ids a conversation grain remembers the
	// answer of, to answer a repeated send without a store read; 0 turns the cache
	// off (the store's check stays). It grows with use up to this. Default 256.
	DedupeCache int `yaml:"dedupeCache"`
}

// Gateway configures the WebSocket gateway.
type Gateway struct {
	// Workers is the size of the worker pool that reads ready sockets. Default 128.
	Workers int `yaml:"workers"`
	// ReadTimeout is the time allowed to finish reading a frame once its first
	// byte has arrived (idle connections are not timed out by it). Default 10s.
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout bounds one write to a client that is behind (one whose frames
	// wait in its outbound queue); a socket that does not take them within it is
	// cut. Default 10s.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// OutboundBytes bounds what may wait to be written to one socket, in bytes; a
	// reader further behind is closed with 1013 (its messages stay in its sync
	// queue for its next sync). Default 1048576 (1 MiB).
	OutboundBytes int `yaml:"outboundBytes"`
	// ShutdownGrace is how long shutdown waits for connections to close. Default 10s.
	ShutdownGrace time.Duration `yaml:"shutdownGrace"`
}

// Presence configures liveness: when a connection counts as gone.
type Presence struct {
	// DeadAfter closes a connection that nothing arrived on for this long (no
	// frame, no ping, no WebSocket ping frame) with 1001 "no heartbeat": a peer
	// that vanished without closing. Clients ping more often than this. Default 30s.
	DeadAfter time.Duration `yaml:"deadAfter"`
	// AwayAfter shows a device away once only heartbeats (pings) came from it for
	// this long; its next other frame shows it online again. Default 5m.
	AwayAfter time.Duration `yaml:"awayAfter"`
	// Grace is how long a user whose last connection went still shows online to
	// its watchers: a reconnect within it shows them nothing. Default 5s.
	Grace time.Duration `yaml:"grace"`
}

// Receipts tunes delivered and read receipts.
type Receipts struct {
	// SaveDelay is how long a device's received frames are gathered before its
	// cursor and their delivered watermarks are written (one write for all of them;
	// the receipts are told live at once). A crash loses at most this much of
	// acknowledgements: those messages are delivered again, and acknowledged again.
	// 0 writes each at once. Default 1s.
	SaveDelay time.Duration `yaml:"saveDelay"`
	// TellDelay is how long a node gathers the live receipts due to one user, from
	// the first, before it tells them together: one frame per (conversation, member,
	// status) at its highest, none for a delivered that a read covers, and one
	// write per connection. A receipt reaches its users at most this much later.
	// 0 tells each at once. Default 100ms.
	TellDelay time.Duration `yaml:"tellDelay"`
}

// Push configures push notifications to devices with no connection. A provider
// with no settings is off: registering a device with it is refused.
type Push struct {
	// Gather is how long the messages to an offline device are gathered into one
	// notification (the count, and the latest as preview), from the first.
	// 0..1m. Default 2s.
	Gather time.Duration `yaml:"gather"`
	// Poll is how often a node looks for notifications due. 10ms..1m. Default 500ms.
	Poll time.Duration `yaml:"poll"`
	// Claim is how long a node holds a notification it is sending before another
	// node may take it (a node that died while sending). 1s..10m. Default 30s.
	Claim time.Duration `yaml:"claim"`
	// Deadline is how long a notification is retried before it is dropped (and
	// counted failed). 1s..72h. Default 1h.
	Deadline time.Duration `yaml:"deadline"`
	// BackoffMin and BackoffMax bound the wait between tries: it doubles from
	// BackoffMin up to BackoffMax, each wait drawn in [½, 1] of it (jitter); a
	// provider's Retry-After is waited at least. Defaults 1s and 5m.
	BackoffMin time.Duration `yaml:"backoffMin"`
	BackoffMax time.Duration `yaml:"backoffMax"`
	// Workers is how many notifications one node sends at once, 1..1024. Default 16.
	Workers int `yaml:"workers"`
	// Timeout bounds one request to a provider. 100ms..1m. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// Preview puts the latest message's text in notifications (clipped to
	// PreviewBytes). false sends no text to any provider. Default true.
	Preview bool `yaml:"preview"`
	// PreviewBytes is the longest preview, in bytes, 1..1024 (APNs refuses a
	// payload past 4 KiB). Default 200.
	PreviewBytes int `yaml:"previewBytes"`
	// CAFile, when set, is the only CA trusted for every provider's HTTPS
	// endpoint (a private gateway, tests); "" trusts the system's roots.
	CAFile string `yaml:"caFile"`

	Webhook Webhook `yaml:"webhook"`
	FCM     FCM     `yaml:"fcm"`
	APNs    APNs    `yaml:"apns"`
	WebPush WebPush `yaml:"webpush"`
}

// Webhook posts each notification as JSON to one URL of the operator's own push
// gateway, signed with HMAC-SHA256 (see internal/push).
type Webhook struct {
	// URL is where notifications are posted; "" turns the provider off.
	URL string `yaml:"url"`
	// Secret is the HMAC key, at least 32 bytes. Env: PARLEY_PUSH_WEBHOOK_SECRET.
	Secret string `yaml:"-"`
	// SecretFile holds the key when Secret is not set.
	SecretFile string `yaml:"secretFile"`
}

// FCM sends through Firebase Cloud Messaging's HTTP v1 API, with an OAuth2
// token from a service account.
type FCM struct {
	// CredentialsFile is the service account's JSON key; "" turns the provider
	// off. Its project_id names the project unless ProjectID does. Env:
	// PARLEY_PUSH_FCM_CREDENTIALS.
	CredentialsFile string `yaml:"credentialsFile"`
	// ProjectID overrides the key file's project_id.
	ProjectID string `yaml:"projectId"`
	// Endpoint is the API's base URL. Default "https://fcm.googleapis.com".
	Endpoint string `yaml:"endpoint"`
}

// APNs sends to Apple's push service over HTTP/2 with token-based auth (an ES256
// JWT signed with the team's .p8 key).
type APNs struct {
	// KeyFile is the .p8 signing key (PEM, PKCS#8 EC P-256); "" turns the provider
	// off. Env: PARLEY_PUSH_APNS_KEY.
	KeyFile string `yaml:"keyFile"`
	// KeyID and TeamID name the key and the team (the JWT's kid and iss).
	KeyID  string `yaml:"keyId"`
	TeamID string `yaml:"teamId"`
	// Topic is the app's bundle id (apns-topic).
	Topic string `yaml:"topic"`
	// Endpoint is the service's base URL. Default "https://api.push.apple.com"
	// (the sandbox is https://api.sandbox.push.apple.com).
	Endpoint string `yaml:"endpoint"`
}

// WebPush sends RFC 8030 pushes with VAPID (RFC 8292) and RFC 8291 payload
// encryption, to browsers' push services.
type WebPush struct {
	// PublicKey is the VAPID public key (uncompressed P-256 point, base64url);
	// "" turns the provider off. Clients subscribe with it.
	PublicKey string `yaml:"publicKey"`
	// PrivateKeyFile holds the VAPID private key (base64url scalar). Env:
	// PARLEY_PUSH_VAPID_PRIVATE_KEY (the key itself).
	PrivateKeyFile string `yaml:"privateKeyFile"`
	PrivateKey     string `yaml:"-"`
	// Subscriber is the VAPID contact, a mailto: or https: URL.
	Subscriber string `yaml:"subscriber"`
	// AllowedHosts are the push services a subscription's endpoint may name
	// (exact host names, or ".example.com" for any subdomain). A registration
	// naming another host is refused: a client must not make the node post to an
	// address of its choice. Default: the push services of Chrome, Firefox,
	// Edge and Safari.
	AllowedHosts []string `yaml:"allowedHosts"`
	// TTL is how long the push service keeps an undelivered push, 0..28d.
	// Default 24h.
	TTL time.Duration `yaml:"ttl"`
}

// Log configures the node's slog logger.
type Log struct {
	// Level is the minimum level logged: debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
	// Format is the output format: text or json. Default "text".
	Format string `yaml:"format"`
}

// Default returns the configuration with every default applied. Database.URL
// is left empty: it has no default and must be set.
func Default() Config {
	return Config{
		Cluster: Cluster{Name: "parley", Provider: ProviderLocal, Host: "127.0.0.1", Port: 0,
			Automanaged: Automanaged{Peers: []string{}, Refresh: time.Second},
			ZooKeeper: ZooKeeper{Servers: []string{"127.0.0.1:2181"}, SessionTimeout: 10 * time.Second,
				BaseKey: "/parley"}},
		Node: Node{ID: -1},
		Database: Database{
			MaxConns:   16,
			BatchDelay: 0,
			BatchMax:   512,
			Committers: 1,
		},
		Listen: Listen{HTTP: "127.0.0.1:8080", Admin: "127.0.0.1:8081", ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
			MaxConns: 19000, ConnsPerAddress: 1000},
		Admin: Admin{},
		Auth: Auth{TokenTTL: 720 * time.Hour, BcryptCost: 10,
			SessionCacheTTL: 10 * time.Second, SessionCacheEntries: 1 << 16,
			LoginPerAddress:    RateLimit{Rate: 0.17, Burst: 3},
			LoginPerAccount:    RateLimit{Rate: 0.17, Burst: 3},
			RegisterPerAddress: RateLimit{Rate: 0.17, Burst: 3},
			RequestsPerAddress: RateLimit{Rate: 20, Burst: 100},
			LimiterEntries:     100000,
			ExemptAddresses:    []string{"127.0.0.0/8", "::1/128"},
		},
		Limits: Limits{
			MaxFrameBytes:        65536,
			MaxTextBytes:         4096,
			FrameRate:            100,
			FrameBurst:           200,
			SyncBatch:            500,
			HistoryMax:           100,
			HistoryDefault:       50,
			MaxGroupMembers:      500,
			MaxContacts:          5000,
			MaxChannelMembers:    100000,
			ChannelAddBatch:      1000,
			ChannelsPerUser:      1000,
			ChannelUnreadMax:     1000,
			ChannelMentions:      10,
			ChannelPosts:         RateLimit{Rate: 1, Burst: 5},
			SocketsPerUser:       32,
			UserSends:            RateLimit{Rate: 100, Burst: 200},
			UserReads:            RateLimit{Rate: 5000, Burst: 20000},
			GroupsCreated:        RateLimit{Rate: 0.0056, Burst: 20}, // about 20 an hour
			ConversationsStarted: RateLimit{Rate: 0.014, Burst: 50},  // about 50 an hour
			TypingInterval:       3 * time.Second,
		},
		Grains: Grains{
			RequestTimeout: 5 * time.Second,
			IdleTimeout:    10 * time.Minute,
			DedupeCache:    256,
		},
		Presence: Presence{DeadAfter: 30 * time.Second, AwayAfter: 5 * time.Minute, Grace: 5 * time.Second},
		Receipts: Receipts{SaveDelay: time.Second, TellDelay: 100 * time.Millisecond},
		Push: Push{Gather: 2 * time.Second, Poll: 500 * time.Millisecond, Claim: 30 * time.Second,
			Deadline: time.Hour, BackoffMin: time.Second, BackoffMax: 5 * time.Minute, Workers: 16,
			Timeout: 10 * time.Second, Preview: true, PreviewBytes: 200,
			FCM:  FCM{Endpoint: "https://fcm.googleapis.com"},
			APNs: APNs{Endpoint: "https://api.push.apple.com"},
			WebPush: WebPush{TTL: 24 * time.Hour, AllowedHosts: []string{"fcm.googleapis.com",
				".push.services.mozilla.com", ".notify.windows.com", ".push.apple.com"}}},
		Gateway: Gateway{
			Workers:       128,
			ReadTimeout:   10 * time.Second,
			WriteTimeout:  10 * time.Second,
			OutboundBytes: 1 << 20,
			ShutdownGrace: 10 * time.Second,
		},
		Log: Log{Level: "info", Format: "text"},
	}
}

// Cluster providers.
const (
	ProviderLocal       = "local"
	ProviderAutomanaged = "automanaged"
	ProviderZooKeeper   = "zookeeper"
)

// MinTokenSecretBytes is the shortest accepted Auth.TokenSecret.
const MinTokenSecretBytes = 32

// DefaultTokenSecretFile is where the token keys are kept when
// Auth.TokenSecretFile is not set: $XDG_STATE_HOME/parley/token-secret, else
// ~/.local/state/parley/token-secret (so every node run by one user on one host
// shares it).
func DefaultTokenSecretFile() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("auth.tokenSecretFile: not set, and no home directory for the default: %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "parley", "token-secret"), nil
}

// SecretFile is TokenSecretFile, or [DefaultTokenSecretFile] when it is "".
func (a Auth) SecretFile() (string, error) {
	if a.TokenSecretFile != "" {
		return a.TokenSecretFile, nil
	}
	return DefaultTokenSecretFile()
}
