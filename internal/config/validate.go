package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/parleychat/parley/internal/certs"
)

// Validate checks c and reports every problem at once, joined with
// [errors.Join]. Each problem is one line that starts with its YAML key path,
// as in "limits.maxTextBytes: must be > 0". It returns nil when c is valid.
func (c *Config) Validate() error {
	v := &validator{}
	c.Cluster.validate(v)
	c.Node.validate(v)
	c.Database.validate(v)
	c.Listen.validate(v)
	c.Admin.validate(v, c.Listen.Admin)
	c.Auth.validate(v)
	c.Limits.validate(v)
	c.Grains.validate(v)
	c.Gateway.validate(v)
	v.duration("presence.deadAfter", c.Presence.DeadAfter)
	v.duration("presence.grace", c.Presence.Grace)
	v.duration("presence.awayAfter", c.Presence.AwayAfter)
	if d := c.Receipts.SaveDelay; d < 0 || d > time.Minute {
		v.addf("receipts.saveDelay", "must be a duration from 0 to 1m, got %s", d)
	}
	if d := c.Receipts.TellDelay; d < 0 || d > 10*time.Second {
		v.addf("receipts.tellDelay", "must be a duration from 0 to 10s, got %s", d)
	}
	c.Push.validate(v)
	c.Log.validate(v)
	return errors.Join(v.errs...)
}

// validator collects problems, each prefixed with its key path.
type validator struct {
	errs []error
}

func (v *validator) addf(key, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (v *validator) nonEmpty(key, s string) {
	if s == "" {
		v.addf(key, "required")
	}
}

func (v *validator) positive(key string, n int) {
	if n <= 0 {
		v.addf(key, "must be > 0, got %d", n)
	}
}

func (v *validator) between(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.addf(key, "must be in %d..%d, got %d", lo, hi, n)
	}
}

func (v *validator) duration(key string, d time.Duration) {
	if d <= 0 {
		v.addf(key, "must be a duration > 0, got %s", d)
	}
}

func (v *validator) oneOf(key, s string, allowed ...string) {
	for _, a := range allowed {
		if s == a {
			return
		}
	}
	v.addf(key, "must be one of %q, got %q", allowed, s)
}

// hostPort checks that addr has the form host:port with a numeric port in
// 0..65535; the host may be empty (all interfaces).
func (v *validator) hostPort(key, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.addf(key, "must be host:port, got %q", addr)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		v.addf(key, "port must be a number in 0..65535, got %q", port)
	}
}

func (c Cluster) validate(v *validator) {
	v.nonEmpty("cluster.name", c.Name)
	v.oneOf("cluster.provider", c.Provider, ProviderLocal, ProviderAutomanaged, ProviderZooKeeper)
	v.nonEmpty("cluster.host", c.Host)
	v.between("cluster.port", c.Port, 0, 65535)
	c.TLS.validate(v, c.Host)
	switch c.Provider {
	case ProviderAutomanaged:
		a := c.Automanaged
		v.between("cluster.automanaged.port", a.Port, 1, 65535)
		if len(a.Peers) == 0 {
			v.addf("cluster.automanaged.peers", "required with provider %q", ProviderAutomanaged)
		}
		for _, p := range a.Peers {
			v.hostPort("cluster.automanaged.peers", p)
		}
		v.duration("cluster.automanaged.refresh", a.Refresh)
	case ProviderZooKeeper:
		z := c.ZooKeeper
		if len(z.Servers) == 0 {
			v.addf("cluster.zookeeper.servers", "required with provider %q", ProviderZooKeeper)
		}
		for _, s := range z.Servers {
			v.hostPort("cluster.zookeeper.servers", s)
		}
		if z.SessionTimeout < 4*time.Second || z.SessionTimeout > 40*time.Second {
			v.addf("cluster.zookeeper.sessionTimeout", "must be in 4s..40s, got %s", z.SessionTimeout)
		}
		if len(z.BaseKey) < 2 || z.BaseKey[0] != '/' || z.BaseKey[len(z.BaseKey)-1] == '/' {
			v.addf("cluster.zookeeper.baseKey", "must be a znode path like /parley, got %q", z.BaseKey)
		}
	}
}

// validate checks that the TLS files are all set or none, that they load and that the
// certificate is a member certificate of the CA; and that TLS is on when the remote
// transport binds a host other than loopback.
func (t TLS) validate(v *validator, host string) {
	if !t.Enabled() {
		if host != "" && !Loopback(host) {
			v.addf("cluster.tls", "required when cluster.host is not a loopback address (got %q): "+
				"set cert, key and ca, so that only members can use the remote port", host)
		}
		return
	}
	var missing []string
	for _, f := range []struct{ key, path string }{{"cert", t.Cert}, {"key", t.Key}, {"ca", t.CA}} {
		if f.path == "" {
			missing = append(missing, f.key)
		}
	}
	if len(missing) > 0 {
		v.addf("cluster.tls", "cert, key and ca are set together; missing %s", strings.Join(missing, ", "))
		return
	}
	cas, caErr := certs.LoadCA(t.CA)
	if caErr != nil {
		v.addf("cluster.tls.ca", "%v", caErr)
	}
	cert, err := certs.LoadKeyPair(t.Cert, t.Key)
	if err != nil {
		v.addf("cluster.tls.cert", "%v", err)
		return
	}
	if caErr == nil {
		if err := certs.Verify(cert, cas); err != nil {
			v.addf("cluster.tls.cert", "%s: %v", t.Cert, err)
		}
	}
}

// Loopback reports whether host is "localhost" or a loopback IP address (as
// 127.0.0.1 or ::1); other names are not resolved, so they count as not loopback.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (n Node) validate(v *validator) {
	v.between("node.id", n.ID, -1, 1023)
}

func (d Database) validate(v *validator) {
	v.nonEmpty("database.url", d.URL)
	v.positive("database.maxConns", int(d.MaxConns))
	if d.BatchDelay < 0 || d.BatchDelay > time.Second {
		v.addf("database.batchDelay", "must be a duration in 0s..1s, got %s", d.BatchDelay)
	}
	v.positive("database.batchMax", d.BatchMax)
	v.between("database.committers", d.Committers, 1, 64)
}

func (l Listen) validate(v *validator) {
	if l.HTTP == "" {
		v.addf("listen.http", "required")
	} else {
		v.hostPort("listen.http", l.HTTP)
	}
	if l.Admin != "" {
		v.hostPort("listen.admin", l.Admin)
		if l.Admin == l.HTTP && !ephemeral(l.Admin) {
			v.addf("listen.admin", "must differ from listen.http (%q)", l.HTTP)
		}
	}
	v.duration("listen.readHeaderTimeout", l.ReadHeaderTimeout)
	v.duration("listen.readTimeout", l.ReadTimeout)
	if l.ReadTimeout > 0 && l.ReadTimeout < l.ReadHeaderTimeout {
		v.addf("listen.readTimeout", "must be >= listen.readHeaderTimeout (%s), got %s", l.ReadHeaderTimeout, l.ReadTimeout)
	}
	v.duration("listen.writeTimeout", l.WriteTimeout)
	v.duration("listen.idleTimeout", l.IdleTimeout)
	v.between("listen.maxConns", l.MaxConns, 1, 1_000_000)
	v.between("listen.connsPerAddress", l.ConnsPerAddress, 0, 1_000_000)
}

// validate refuses an admin listener that other hosts can reach without a
// token: it serves who talks to whom (/admin/grains), the members' addresses and,
// with pprof, goroutine dumps.
func (a Admin) validate(v *validator, addr string) {
	if addr == "" || a.Token != "" {
		return
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && !Loopback(host) {
		v.addf("admin.token", "required when listen.admin is not a loopback address (got %q)", addr)
	}
}

// ephemeral reports whether addr asks for a port chosen by the system (port 0).
func ephemeral(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	return err == nil && port == "0"
}

func (a Auth) validate(v *validator) {
	if a.TokenSecret != "" && len(a.TokenSecret) < MinTokenSecretBytes {
		v.addf("auth.tokenSecret", "must be at least %d bytes when set, got %d", MinTokenSecretBytes, len(a.TokenSecret))
	}
	if a.PreviousTokenSecret != "" {
		if len(a.PreviousTokenSecret) < MinTokenSecretBytes {
			v.addf("auth.previousTokenSecret", "must be at least %d bytes when set, got %d", MinTokenSecretBytes, len(a.PreviousTokenSecret))
		}
		if a.TokenSecret == "" {
			v.addf("auth.previousTokenSecret", "needs auth.tokenSecret (a key file holds its previous key on its second line)")
		}
	}
	v.duration("auth.tokenTTL", a.TokenTTL)
	if a.SessionCacheTTL < time.Second || a.SessionCacheTTL > time.Hour {
		v.addf("auth.sessionCacheTTL", "must be a duration in 1s..1h, got %s", a.SessionCacheTTL)
	}
	v.between("auth.sessionCacheEntries", a.SessionCacheEntries, 1, 10_000_000)
	v.between("auth.bcryptCost", a.BcryptCost, 4, 31)
	v.between("auth.hashConcurrency", a.HashConcurrency, 0, 1024)
	a.LoginPerAddress.validate(v, "auth.loginPerAddress")
	a.LoginPerAccount.validate(v, "auth.loginPerAccount")
	a.RegisterPerAddress.validate(v, "auth.registerPerAddress")
	a.RequestsPerAddress.validate(v, "auth.requestsPerAddress")
	v.between("auth.limiterEntries", a.LimiterEntries, 1, 10_000_000)
	for _, p := range a.ExemptAddresses {
		if _, err := ParsePrefix(p); err != nil {
			v.addf("auth.exemptAddresses", "%q is no CIDR prefix or address", p)
		}
	}
}

func (r RateLimit) validate(v *validator, key string) {
	v.between(key+".burst", r.Burst, 0, 1_000_000)
	if r.Burst > 0 && (!(r.Rate > 0) || math.IsInf(r.Rate, 0)) {
		v.addf(key+".rate", "must be a finite number > 0 when burst is set, got %v", r.Rate)
	}
}

// ParsePrefix reads a CIDR prefix ("10.0.0.0/8", "fd00::/8") or a bare address
// (a prefix of its full length).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ExemptPrefixes parses ExemptAddresses (which Validate has checked).
func (a Auth) ExemptPrefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(a.ExemptAddresses))
	for _, s := range a.ExemptAddresses {
		if p, err := ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func (l Limits) validate(v *validator) {
	v.positive("limits.maxFrameBytes", l.MaxFrameBytes)
	v.between("limits.maxGroupMembers", l.MaxGroupMembers, 2, 100000)
	v.between("limits.maxContacts", l.MaxContacts, 1, 1000000)
	v.between("limits.maxChannelMembers", l.MaxChannelMembers, 2, 100000000)
	v.between("limits.channelAddBatch", l.ChannelAddBatch, 1, 100000)
	v.between("limits.channelsPerUser", l.ChannelsPerUser, 1, 100000)
	v.between("limits.channelUnreadMax", l.ChannelUnreadMax, 1, 1000000)
	l.ChannelPosts.validate(v, "limits.channelPosts")
	v.between("limits.channelMentions", l.ChannelMentions, 0, 100)
	v.positive("limits.maxTextBytes", l.MaxTextBytes)
	if l.MaxTextBytes > 0 && l.MaxFrameBytes > 0 && l.MaxTextBytes >= l.MaxFrameBytes {
		v.addf("limits.maxTextBytes", "must be < limits.maxFrameBytes (%d), got %d", l.MaxFrameBytes, l.MaxTextBytes)
	}
	if !(l.FrameRate > 0) || math.IsInf(l.FrameRate, 0) {
		v.addf("limits.frameRate", "must be a finite number > 0, got %v", l.FrameRate)
	}
	v.positive("limits.frameBurst", l.FrameBurst)
	v.positive("limits.syncBatch", l.SyncBatch)
	v.positive("limits.historyMax", l.HistoryMax)
	v.positive("limits.historyDefault", l.HistoryDefault)
	if l.HistoryDefault > l.HistoryMax {
		v.addf("limits.historyDefault", "must be <= limits.historyMax (%d), got %d", l.HistoryMax, l.HistoryDefault)
	}
	v.between("limits.socketsPerUser", l.SocketsPerUser, 0, 100000)
	l.UserSends.validate(v, "limits.userSends")
	l.UserReads.validate(v, "limits.userReads")
	l.GroupsCreated.validate(v, "limits.groupsCreated")
	l.ConversationsStarted.validate(v, "limits.conversationsStarted")
	if l.TypingInterval < 0 {
		v.addf("limits.typingInterval", "must be >= 0, got %v", l.TypingInterval)
	}
}

func (g Grains) validate(v *validator) {
	v.duration("grains.requestTimeout", g.RequestTimeout)
	v.duration("grains.idleTimeout", g.IdleTimeout)
	v.between("grains.dedupeCache", g.DedupeCache, 0, 1<<20)
}

func (g Gateway) validate(v *validator) {
	v.positive("gateway.workers", g.Workers)
	v.duration("gateway.readTimeout", g.ReadTimeout)
	v.duration("gateway.writeTimeout", g.WriteTimeout)
	v.between("gateway.outboundBytes", g.OutboundBytes, 4<<10, 1<<30)
	v.duration("gateway.shutdownGrace", g.ShutdownGrace)
}

func (l Log) validate(v *validator) {
	v.oneOf("log.level", l.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", l.Format, "text", "json")
}

func (p *Push) validate(v *validator) {
	between := func(key string, d, lo, hi time.Duration) {
		if d < lo || d > hi {
			v.addf(key, "must be a duration from %s to %s, got %s", lo, hi, d)
		}
	}
	between("push.gather", p.Gather, 0, time.Minute)
	between("push.poll", p.Poll, 10*time.Millisecond, time.Minute)
	between("push.claim", p.Claim, time.Second, 10*time.Minute)
	between("push.deadline", p.Deadline, time.Second, 72*time.Hour)
	between("push.backoffMin", p.BackoffMin, time.Millisecond, time.Hour)
	between("push.backoffMax", p.BackoffMax, p.BackoffMin, 24*time.Hour)
	between("push.timeout", p.Timeout, 100*time.Millisecond, time.Minute)
	if p.Workers < 1 || p.Workers > 1024 {
		v.addf("push.workers", "must be from 1 to 1024, got %d", p.Workers)
	}
	if p.PreviewBytes < 1 || p.PreviewBytes > 1024 {
		v.addf("push.previewBytes", "must be from 1 to 1024, got %d", p.PreviewBytes)
	}
	if p.Claim <= p.Timeout {
		v.addf("push.claim", "must be longer than push.timeout (%s), got %s", p.Timeout, p.Claim)
	}
	for key, u := range map[string]string{"push.webhook.url": p.Webhook.URL, "push.fcm.endpoint": p.FCM.Endpoint,
		"push.apns.endpoint": p.APNs.Endpoint} {
		if u != "" && !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			v.addf(key, "must be an http(s) URL, got %q", u)
		}
	}
	if p.Webhook.URL != "" && p.Webhook.Secret == "" && p.Webhook.SecretFile == "" {
		v.addf("push.webhook.secretFile", "required with push.webhook.url (or PARLEY_PUSH_WEBHOOK_SECRET)")
	}
	if a := p.APNs; a.KeyFile != "" && (a.KeyID == "" || a.TeamID == "" || a.Topic == "") {
		v.addf("push.apns", "keyId, teamId and topic are required with keyFile")
	}
	if w := p.WebPush; w.PublicKey != "" {
		if w.PrivateKey == "" && w.PrivateKeyFile == "" {
			v.addf("push.webpush.privateKeyFile", "required with push.webpush.publicKey (or PARLEY_PUSH_VAPID_PRIVATE_KEY)")
		}
		if !strings.HasPrefix(w.Subscriber, "mailto:") && !strings.HasPrefix(w.Subscriber, "https://") {
			v.addf("push.webpush.subscriber", "must be a mailto: or https: URL, got %q", w.Subscriber)
		}
		if w.TTL < 0 || w.TTL > 28*24*time.Hour {
			v.addf("push.webpush.ttl", "must be a duration from 0 to 672h, got %s", w.TTL)
		}
	}
}
