package push

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parleychat/parley/internal/config"
)

const (
	// apnsTokenAge is how long a provider JWT is reused. Apple refuses one older
	// than an hour and one refreshed more often than every 20 minutes.
	apnsTokenAge = 50 * time.Minute
	// apnsExpiry is how long Apple keeps trying a device that is off.
	apnsExpiry = 24 * time.Hour
	// apnsMaxCollapseID is the longest apns-collapse-id, in bytes.
	apnsMaxCollapseID = 64
	// apnsMaxErrorBody bounds how much of an error answer is read.
	apnsMaxErrorBody = 4 << 10
	// apnsNoPreview is the alert body when the notification carries no text.
	apnsNoPreview = "New message"
)

// APNsProvider sends notifications through Apple Push Notification service with
// token-based auth: each request carries an ES256 JWT signed with the team's
// key, minted once and reused for up to 50 minutes. It is safe for concurrent use.
type APNsProvider struct {
	client   *http.Client
	key      *ecdsa.PrivateKey
	keyID    string
	teamID   string
	topic    string
	endpoint string
	now      func() time.Time // the clock; time.Now outside tests

	mu     sync.Mutex
	jwt    string // the cached provider token, "" if none
	minted time.Time
}

var _ Provider = (*APNsProvider)(nil)

// NewAPNs builds the APNs provider from its settings, reading the signing key
// (a PEM "PRIVATE KEY", PKCS#8, holding an EC P-256 key) from cfg.KeyFile.
//
// APNs speaks only HTTP/2: client must negotiate it (an http.Transport with
// ForceAttemptHTTP2 and TLS, or one from golang.org/x/net/http2). The client's
// own timeout, if any, applies to each request, as does Send's context.
func NewAPNs(cfg config.APNs, client *http.Client) (*APNsProvider, error) {
	if cfg.KeyID == "" || cfg.TeamID == "" || cfg.Topic == "" || cfg.Endpoint == "" {
		return nil, errors.New("apns: keyId, teamId, topic and endpoint are required")
	}
	if client == nil {
		return nil, errors.New("apns: no HTTP client")
	}
	key, err := readAPNsKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	return &APNsProvider{
		client:   client,
		key:      key,
		keyID:    cfg.KeyID,
		teamID:   cfg.TeamID,
		topic:    cfg.Topic,
		endpoint: strings.TrimSuffix(cfg.Endpoint, "/"),
		now:      time.Now,
	}, nil
}

// readAPNsKey reads a .p8 key: PEM, PKCS#8, EC P-256.
func readAPNsKey(path string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("apns: reading key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("apns: key %s: not a PEM \"PRIVATE KEY\" (PKCS#8)", path)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("apns: parsing key %s: %w", path, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("apns: key %s: not an EC P-256 key", path)
	}
	return key, nil
}

// Check refuses a device token that is not hex bytes, 64 to 200 characters
// (32 bytes today; Apple reserves the right to lengthen it up to 100).
func (p *APNsProvider) Check(token string) error {
	if len(token) < 64 || len(token) > 200 {
		return fmt.Errorf("apns: device token of %d characters, want 64..200", len(token))
	}
	if _, err := hex.DecodeString(token); err != nil {
		return errors.New("apns: device token is not hex")
	}
	return nil
}

// Send posts one notification to the device. Apple's answer maps to an *Error:
// an unregistered or bad device token is Gone, a refused provider token is
// Retry (with a fresh token next time), 429 and 5xx are Retry, other refusals Drop.
func (p *APNsProvider) Send(ctx context.Context, t Target, n Notification) error {
	if err := p.Check(t.Token); err != nil {
		return &Error{Kind: Gone, Reason: err.Error()}
	}
	body, err := json.Marshal(apnsPayload(n))
	if err != nil {
		return fmt.Errorf("apns: encoding payload: %w", err)
	}
	bearer, err := p.token()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		p.endpoint+"/3/device/"+url.PathEscape(t.Token), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("apns: building request: %w", err)
	}
	p.setHeaders(req.Header, bearer, n)
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("apns: sending: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, apnsMaxErrorBody))
		return nil
	}
	e := p.classify(resp)
	if e.Kind == Retry && e.Status == http.StatusForbidden { // the JWT was refused
		p.dropToken(bearer)
	}
	return e
}

func (p *APNsProvider) setHeaders(h http.Header, bearer string, n Notification) {
	h.Set("authorization", "bearer "+bearer)
	h.Set("content-type", "application/json")
	h.Set("apns-topic", p.topic)
	h.Set("apns-push-type", "alert")
	h.Set("apns-priority", "10")
	h.Set("apns-expiration", strconv.FormatInt(p.now().Add(apnsExpiry).Unix(), 10))
	if n.Conversation != "" {
		h.Set("apns-collapse-id", apnsCollapseID(n.Conversation))
	}
	if n.ID != "" {
		h.Set("apns-id", apnsID(n.ID))
	}
}

// classify reads Apple's {"reason": ...} from a refusal and says what to do.
func (p *APNsProvider) classify(resp *http.Response) *Error {
	var answer struct {
		Reason string `json:"reason"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, apnsMaxErrorBody))
	_ = json.Unmarshal(raw, &answer)
	reason := answer.Reason
	if reason == "" {
		reason = http.StatusText(resp.StatusCode)
	}
	e := &Error{
		Status:     resp.StatusCode,
		Reason:     reason,
		RetryAfter: RetryAfter(resp.Header.Get("Retry-After"), p.now()),
	}
	switch code := resp.StatusCode; {
	case code == http.StatusGone,
		code == http.StatusBadRequest && (reason == "BadDeviceToken" || reason == "DeviceTokenNotForTopic"):
		e.Kind = Gone
	case code == http.StatusForbidden && (reason == "ExpiredProviderToken" || reason == "InvalidProviderToken"):
		e.Kind = Retry
	case code == http.StatusTooManyRequests, code >= 500:
		e.Kind = Retry
	default: // 404 is BadPath here, not a gone device
		e.Kind = Drop
	}
	return e
}

// token is the provider JWT, minted anew when the cached one is 50 minutes old.
func (p *APNsProvider) token() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if age := now.Sub(p.minted); p.jwt != "" && age >= 0 && age < apnsTokenAge {
		return p.jwt, nil
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.RegisteredClaims{
		Issuer:   p.teamID,
		IssuedAt: jwt.NewNumericDate(now),
	})
	tok.Header["kid"] = p.keyID
	signed, err := tok.SignedString(p.key)
	if err != nil {
		return "", fmt.Errorf("apns: signing provider token: %w", err)
	}
	p.jwt, p.minted = signed, now
	return signed, nil
}

// dropToken forgets the cached JWT if it is still the one Apple refused, so that
// concurrent refusals of one token cause one new token, not one each.
func (p *APNsProvider) dropToken(refused string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.jwt == refused {
		p.jwt = ""
	}
}

type apnsAlert struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

type apnsAps struct {
	Alert    apnsAlert `json:"alert"`
	Badge    int64     `json:"badge"`
	Sound    string    `json:"sound"`
	ThreadID string    `json:"thread-id,omitempty"`
}

type apnsBody struct {
	Aps          apnsAps `json:"aps"`
	Conversation string  `json:"conversation"`
	MessageID    int64   `json:"messageId,string"`
	From         string  `json:"from"`
	Count        int     `json:"count"`
	ID           string  `json:"id"`
}

func apnsPayload(n Notification) apnsBody {
	text := n.Preview
	if text == "" {
		text = apnsNoPreview
	}
	return apnsBody{
		Aps: apnsAps{
			Alert:    apnsAlert{Title: n.From, Body: text},
			Badge:    n.Unread,
			Sound:    "default",
			ThreadID: n.Conversation,
		},
		Conversation: n.Conversation,
		MessageID:    n.MessageID,
		From:         n.From,
		Count:        n.Count,
		ID:           n.ID,
	}
}

// apnsCollapseID is the conversation, or its SHA-256 in hex (64 bytes) when the
// conversation is longer than Apple allows.
func apnsCollapseID(conversation string) string {
	if len(conversation) <= apnsMaxCollapseID {
		return conversation
	}
	sum := sha256.Sum256([]byte(conversation))
	return hex.EncodeToString(sum[:])
}

// apnsID is a UUID (version 8, RFC 9562) derived from the notification's id, so
// that every try of one notification carries the same apns-id.
func apnsID(id string) string {
	sum := sha256.Sum256([]byte(id))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x80 // version 8
	u[8] = u[8]&0x3f | 0x80 // variant 10
	h := hex.EncodeToString(u)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
