package push

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook headers. The signature is "v1=" and the hex HMAC-SHA256, under the
// shared secret, of the timestamp, a ".", and the body: a receiver recomputes it
// and refuses a timestamp too far from its clock, so that a captured request
// cannot be replayed later. The id is the notification's (the same on every try),
// for the receiver to drop repeats.
const (
	HeaderTimestamp = "X-Parley-Timestamp" // Unix seconds
	HeaderSignature = "X-Parley-Signature"
	HeaderPushID    = "X-Parley-Push-Id"
)

// MinWebhookSecret is the shortest webhook secret accepted, in bytes.
const MinWebhookSecret = 32

// WebhookBody is what a webhook receives: the notification, and the device's token
// as registered (for the gateway to find the device).
type WebhookBody struct {
	Token        string       `json:"token"`
	Notification Notification `json:"notification"`
}

// WebhookProvider posts notifications to an operator's push gateway.
type WebhookProvider struct {
	url    string
	secret []byte
	client *http.Client
	now    func() time.Time
}

// NewWebhook returns a provider that posts to url, signing with secret.
func NewWebhook(url string, secret []byte, client *http.Client) (*WebhookProvider, error) {
	if len(secret) < MinWebhookSecret {
		return nil, fmt.Errorf("push: the webhook secret must be at least %d bytes, got %d", MinWebhookSecret, len(secret))
	}
	return &WebhookProvider{url: url, secret: bytes.Clone(secret), client: client, now: time.Now}, nil
}

// Check accepts any token up to 4096 bytes with no control characters: its
// meaning is the gateway's.
func (p *WebhookProvider) Check(token string) error {
	if token == "" || len(token) > 4096 || strings.ContainsFunc(token, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("webhook token must be 1 to 4096 bytes with no control characters")
	}
	return nil
}

// Send posts the notification; 2xx is accepted, 404 and 410 mean the gateway no
// longer knows the token (Gone).
func (p *WebhookProvider) Send(ctx context.Context, t Target, n Notification) error {
	body, err := json.Marshal(WebhookBody{Token: t.Token, Notification: n})
	if err != nil {
		return &Error{Kind: Drop, Reason: err.Error()}
	}
	ts := strconv.FormatInt(p.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return &Error{Kind: Drop, Reason: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(p.secret, ts, body))
	req.Header.Set(HeaderPushID, n.ID)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	return HTTPError(resp, strings.TrimSpace(string(msg)))
}

// Sign is the signature header of a body sent at ts (Unix seconds, decimal).
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a webhook request as its receiver should: the signature over ts
// and body, in constant time, and ts within tolerance of now.
func Verify(secret []byte, ts, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("push: bad webhook timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("push: webhook timestamp %s from now, past the tolerance of %s", d.Round(time.Second), tolerance)
	}
	if !hmac.Equal([]byte(signature), []byte(Sign(secret, ts, body))) {
		return errors.New("push: webhook signature does not match")
	}
	return nil
}
