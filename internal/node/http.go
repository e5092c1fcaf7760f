package node

import (
	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/config"
)

// loginThrottle is the REST API's limits on logins and sign-ups.
func loginThrottle(cfg config.Auth) api.Throttle {
	return api.Throttle{
		LoginPerAddress:    cfg.LoginPerAddress,
		LoginPerAccount:    cfg.LoginPerAccount,
		RegisterPerAddress: cfg.RegisterPerAddress,
		Entries:            cfg.LimiterEntries,
		Exempt:             cfg.ExemptPrefixes(),
	}
}
