package push

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/parleychat/parley/internal/config"
)

// ErrBadSubscription is wrapped by every refusal of a Web Push subscription.
var ErrBadSubscription = errors.New("push: bad web push subscription")

const (
	// maxSubscriptionBytes bounds a subscription's JSON.
	maxSubscriptionBytes = 4096
	// maxWebPushPayload is the longest plaintext webpush-go fits in its one
	// 4096-byte record: less the AEAD tag (16), the header (86, with the sender's
	// key) and the padding delimiter (1).
	maxWebPushPayload = 4096 - 16 - 86 - 1
	// maxWebPushReason bounds the part of an error body kept in Error.Reason.
	maxWebPushReason = 200
)

// WebPushProvider sends Web Push (RFC 8030) to browsers' push services, with a
// VAPID (RFC 8292) signature and the payload encrypted per RFC 8291 (aes128gcm).
// Every push is urgent, and carries a Topic derived from its conversation, so a
// newer push replaces an undelivered older one of the same conversation. It is
// safe for concurrent use.
type WebPushProvider struct {
	client     *http.Client
	publicKey  string // base64url, no padding
	privateKey string // base64url, no padding
	subscriber string // as webpush-go takes it: an https: URL, or a mail address without "mailto:"
	ttl        int    // seconds
	allowed    []string
}

// NewWebPush builds the provider from its configuration: the VAPID key pair
// (PrivateKey, else the trimmed content of PrivateKeyFile) must be a valid
// base64url P-256 pair whose halves match. Every request goes through client,
// except that redirects are never followed (a push service must not send the
// node elsewhere); nil means http.DefaultClient.
func NewWebPush(cfg config.WebPush, client *http.Client) (*WebPushProvider, error) {
	pub, err := webPushKey(cfg.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("push: webpush public key: %w", err)
	}
	pubKey, err := ecdh.P256().NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("push: webpush public key: %w", err)
	}
	privText := cfg.PrivateKey
	if privText == "" && cfg.PrivateKeyFile != "" {
		b, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("push: reading webpush private key: %w", err)
		}
		privText = string(b)
	}
	priv, err := webPushKey(strings.TrimSpace(privText))
	if err != nil {
		return nil, fmt.Errorf("push: webpush private key: %w", err)
	}
	if len(priv) != 32 {
		return nil, fmt.Errorf("push: webpush private key: %d bytes, want 32", len(priv))
	}
	privKey, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("push: webpush private key: %w", err)
	}
	if !privKey.PublicKey().Equal(pubKey) {
		return nil, errors.New("push: webpush private key does not match the public key")
	}
	if client == nil {
		client = http.DefaultClient
	}
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &WebPushProvider{
		client:     &c,
		publicKey:  base64.RawURLEncoding.EncodeToString(pub),
		privateKey: base64.RawURLEncoding.EncodeToString(priv),
		// webpush-go puts "mailto:" before any subscriber that is not https:.
		subscriber: strings.TrimPrefix(cfg.Subscriber, "mailto:"),
		ttl:        int(max(cfg.TTL, 0) / time.Second),
		allowed:    cfg.AllowedHosts,
	}, nil
}

// Check refuses a subscription that can never work, or whose endpoint is on a
// host not allowed (see [ParseSubscription]).
func (p *WebPushProvider) Check(token string) error {
	_, _, err := parseSubscription(token, p.allowed)
	return err
}

// Send encrypts n's JSON to the subscription t.Token and posts it to its
// endpoint. A subscription that no longer passes Check is Gone.
func (p *WebPushProvider) Send(ctx context.Context, t Target, n Notification) error {
	sub, host, err := parseSubscription(t.Token, p.allowed)
	if err != nil {
		return &Error{Kind: Gone, Reason: err.Error()}
	}
	payload, err := webPushPayload(n)
	if err != nil {
		return &Error{Kind: Drop, Reason: err.Error()}
	}
	resp, err := webpush.SendNotificationWithContext(ctx, payload, sub, &webpush.Options{
		HTTPClient:      p.client,
		Subscriber:      p.subscriber,
		Topic:           webPushTopic(n.Conversation),
		TTL:             p.ttl,
		Urgency:         webpush.UrgencyHigh,
		VAPIDPublicKey:  p.publicKey,
		VAPIDPrivateKey: p.privateKey,
	})
	if err != nil {
		if errors.Is(err, webpush.ErrMaxPadExceeded) {
			return &Error{Kind: Drop, Reason: "webpush: payload too large"}
		}
		// A *url.Error names the endpoint, which is the subscription's secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("push: posting to %s: %w", host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return HTTPError(resp, webPushReason(host, resp.Status, body))
}

// ParseSubscription reads a browser's push subscription, as its
// PushSubscription.toJSON() gives it ({"endpoint":…,"keys":{"p256dh":…,"auth":…}}),
// and refuses it (wrapping [ErrBadSubscription]) unless the endpoint is an
// https: URL with no userinfo on a host in allowed, p256dh an uncompressed
// P-256 point and auth 16 bytes (both base64url, padding optional). An allowed
// entry is a host name, or ".example.com" for any subdomain of example.com;
// the port is not compared. This keeps a client from making the node post to
// an address of its choice. The keys come back in unpadded base64url.
func ParseSubscription(token string, allowed []string) (*webpush.Subscription, error) {
	sub, _, err := parseSubscription(token, allowed)
	return sub, err
}

// parseSubscription is ParseSubscription, and the endpoint's host.
func parseSubscription(token string, allowed []string) (*webpush.Subscription, string, error) {
	if len(token) > maxSubscriptionBytes {
		return nil, "", fmt.Errorf("%w: longer than %d bytes", ErrBadSubscription, maxSubscriptionBytes)
	}
	var sub webpush.Subscription
	if err := json.Unmarshal([]byte(token), &sub); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrBadSubscription, err)
	}
	host, err := webPushEndpointHost(sub.Endpoint, allowed)
	if err != nil {
		return nil, "", err
	}
	dh, err := webPushKey(sub.Keys.P256dh)
	if err == nil {
		_, err = ecdh.P256().NewPublicKey(dh) // uncompressed, on the curve
	}
	if err != nil {
		return nil, "", fmt.Errorf("%w: p256dh: not an uncompressed P-256 point", ErrBadSubscription)
	}
	auth, err := webPushKey(sub.Keys.Auth)
	if err != nil || len(auth) != 16 {
		return nil, "", fmt.Errorf("%w: auth: not 16 bytes of base64url", ErrBadSubscription)
	}
	sub.Keys.P256dh = base64.RawURLEncoding.EncodeToString(dh)
	sub.Keys.Auth = base64.RawURLEncoding.EncodeToString(auth)
	return &sub, host, nil
}

// webPushEndpointHost checks a subscription's endpoint and returns its host.
func webPushEndpointHost(endpoint string, allowed []string) (string, error) {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: endpoint is not a URL", ErrBadSubscription)
	case u.Scheme != "https":
		return "", fmt.Errorf("%w: endpoint is not https", ErrBadSubscription)
	case u.User != nil:
		return "", fmt.Errorf("%w: endpoint has userinfo", ErrBadSubscription)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("%w: endpoint has no host", ErrBadSubscription)
	}
	host := strings.ToLower(u.Hostname())
	if !webPushHostAllowed(host, allowed) {
		return "", fmt.Errorf("%w: endpoint host %q is not allowed", ErrBadSubscription, host)
	}
	return host, nil
}

// webPushHostAllowed reports whether host (lower case) is an IP literal or a
// well-formed DNS name that allowed names exactly or, for an entry starting
// with ".", as a subdomain.
func webPushHostAllowed(host string, allowed []string) bool {
	if _, err := netip.ParseAddr(host); err != nil && !webPushDNSName(host) {
		return false
	}
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == host || strings.HasPrefix(a, ".") && len(a) > 1 && strings.HasSuffix(host, a) {
			return true
		}
	}
	return false
}

// webPushDNSName reports whether s is dot-separated non-empty labels of
// letters, digits and hyphens.
func webPushDNSName(s string) bool {
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return len(s) <= 253
}

// webPushKey decodes base64url with or without padding.
func webPushKey(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// webPushTopic is the Topic header of a conversation's pushes: 32 characters
// of base64url, a hash so the push service does not learn the conversation.
func webPushTopic(conversation string) string {
	h := sha256.Sum256([]byte("parley push topic\x00" + conversation))
	return base64.RawURLEncoding.EncodeToString(h[:24])
}

// webPushPayload is n's JSON, its preview clipped (on a rune boundary) until it
// fits one record.
func webPushPayload(n Notification) ([]byte, error) {
	for {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(n); err != nil {
			return nil, fmt.Errorf("push: encoding notification: %w", err)
		}
		payload := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
		over := len(payload) - maxWebPushPayload
		if over <= 0 {
			return payload, nil
		}
		if n.Preview == "" {
			return nil, fmt.Errorf("push: notification is %d bytes, more than %d", len(payload), maxWebPushPayload)
		}
		// Each byte of the preview is at least one byte of JSON, so one cut
		// suffices; the loop checks it again.
		k := max(len(n.Preview)-over, 0)
		for k > 0 && !utf8.RuneStart(n.Preview[k]) {
			k--
		}
		n.Preview = n.Preview[:k]
	}
}

// webPushReason describes a refusal: the status and the start of the body, on
// one line of printable text.
func webPushReason(host, status string, body []byte) string {
	text := strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(string(body), "?"))
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > maxWebPushReason {
		k := maxWebPushReason
		for k > 0 && !utf8.RuneStart(text[k]) {
			k--
		}
		text = text[:k] + "…"
	}
	if text == "" {
		return "webpush " + host + ": " + status
	}
	return "webpush " + host + ": " + status + ": " + text
}
