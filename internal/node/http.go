package node

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/auth"
	"github.com/parleychat/parley/internal/config"
	"github.com/parleychat/parley/internal/gateway"
	"github.com/parleychat/parley/persistence"
)

// loginThrottle is the REST API's limits on logins and sign-ups.
func loginThrottle(cfg config.Auth) api.Throttle {
	return api.Throttle{
		LoginPerAddress:    cfg.LoginPerAddress,
		LoginPerAccount:    cfg.LoginPerAccount,
		RegisterPerAddress: cfg.RegisterPerAddress,
		RequestsPerAddress: cfg.RequestsPerAddress,
		Entries:            cfg.LimiterEntries,
		Exempt:             cfg.ExemptPrefixes(),
	}
}

// newSigner returns the token signer of cfg's keys: auth.tokenSecret (and
// auth.previousTokenSecret) when set, else the key file, created with a fresh
// key when missing. The database never holds a key.
func newSigner(cfg config.Auth, provider string, log *slog.Logger) (*auth.Signer, error) {
	current, previous := []byte(cfg.TokenSecret), []byte(cfg.PreviousTokenSecret)
	if len(current) == 0 {
		path, err := cfg.SecretFile()
		if err != nil {
			return nil, err
		}
		var created bool
		if current, previous, created, err = auth.EnsureSecretFile(path); err != nil {
			return nil, fmt.Errorf("auth.tokenSecretFile: %w", err)
		}
		switch info, err := os.Stat(path); {
		case created && provider != config.ProviderLocal:
			log.Warn("generated a token key; every node of the cluster must have the same one (copy the file, "+
				"or set auth.tokenSecret)", slog.String("path", path))
		case created:
			log.Info("generated a token key", slog.String("path", path))
		case err == nil && info.Mode().Perm()&0o077 != 0:
			log.Warn("the token key file can be read by other users", slog.String("path", path),
				slog.String("mode", info.Mode().Perm().String()))
		}
	}
	signer, err := auth.NewSigner(current, cfg.TokenTTL, auth.WithPreviousSecret(previous))
	if err != nil {
		return nil, err
	}
	log.Info("token keys", slog.Any("kid", signer.KeyIDs()))
	return signer, nil
}

// authenticator checks the token of a WebSocket upgrade (from the
// Authorization header, or ?token= when there is none), as the REST API does:
// signature, key, ids, and that the device has not logged out.
func authenticator(sessions *auth.Sessions) gateway.Authenticate {
	return func(r *http.Request) (gateway.Identity, error) {
		claims, err := sessions.Verify(r.Context(), api.UpgradeToken(r))
		switch {
		case errors.Is(err, persistence.ErrUnavailable):
			return gateway.Identity{}, gateway.ErrUnavailable
		case err != nil:
			return gateway.Identity{}, gateway.AuthError
		}
		return gateway.Identity{User: claims.UserID, Device: claims.DeviceID}, nil
	}
}
