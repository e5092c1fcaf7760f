package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/push"
)

// pushProviders builds the providers cfg configures, by provider name; a node with
// none sends no pushes (and refuses registrations).
func pushProviders(cfg config.Push) (map[string]push.Provider, error) {
	client, err := pushClient(cfg)
	if err != nil {
		return nil, err
	}
	out := map[string]push.Provider{}
	if w := cfg.Webhook; w.URL != "" {
		secret := []byte(w.Secret)
		if len(secret) == 0 {
			b, err := os.ReadFile(w.SecretFile)
			if err != nil {
				return nil, fmt.Errorf("push.webhook.secretFile: %w", err)
			}
			secret = []byte(strings.TrimSpace(string(b)))
		}
		p, err := push.NewWebhook(w.URL, secret, client)
		if err != nil {
			return nil, fmt.Errorf("push.webhook: %w", err)
		}
		out[push.Webhook] = p
	}
	if cfg.FCM.CredentialsFile != "" {
		p, err := push.NewFCM(cfg.FCM, client)
		if err != nil {
			return nil, fmt.Errorf("push.fcm: %w", err)
		}
		out[push.FCM] = p
	}
	if cfg.APNs.KeyFile != "" {
		p, err := push.NewAPNs(cfg.APNs, client)
		if err != nil {
			return nil, fmt.Errorf("push.apns: %w", err)
		}
		out[push.APNs] = p
	}
	if cfg.WebPush.PublicKey != "" {
		p, err := push.NewWebPush(cfg.WebPush, client)
		if err != nil {
			return nil, fmt.Errorf("push.webpush: %w", err)
		}
		out[push.WebPush] = p
	}
	return out, nil
}

// pushClient is the HTTP client of every provider: HTTP/2 where the server offers
// it (APNs requires it), cfg.CAFile as the only root when set, and no redirects
// (a push service that redirects is not followed to wherever it points).
func pushClient(cfg config.Push) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = true
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("push.caFile: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("push.caFile: no PEM certificate in it")
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// pushCheck is the API's check of a registration against the providers.
func pushCheck(providers map[string]push.Provider) func(provider, token string) error {
	return func(provider, token string) error {
		p := providers[provider]
		if p == nil {
			return fmt.Errorf("provider %q is not configured on this server", provider)
		}
		return p.Check(token)
	}
}
