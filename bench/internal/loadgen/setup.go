package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/auth"
)

const (
	password = "loadgen-password"
	deviceID = "loadgen" // every user's one device: its cursor carries over between runs
	// messageText is the payload of every message (32 bytes).
	messageText = "loadgen message 0123456789abcde"
)

// setup gets every user an access token and creates the groups.
func (w *worker) setup(ctx context.Context) error {
	if err := w.authenticate(ctx); err != nil {
		return err
	}
	if err := w.registerPush(ctx); err != nil {
		return err
	}
	return w.createGroups(ctx)
}

// pushRecipient tells whether user i is, with Push, a pair's receiving side.
func (w *worker) pushRecipient(i int) bool {
	return w.cfg.Push != "" && i%2 == 1 && w.lay.peer != nil && w.lay.peer[i] >= 0
}

// registerPush registers, with Push, every recipient's push target: the
// provider, with the user name as token.
func (w *worker) registerPush(ctx context.Context) error {
	if w.cfg.Push == "" {
		return nil
	}
	idx := slices.DeleteFunc(span(0, w.lay.users), func(i int) bool { return !w.pushRecipient(i) || w.tokens[i] == "" })
	failed := w.forEach(ctx, idx, w.cfg.RegisterPar, func(ctx context.Context, i int) error {
		err := w.rest(ctx, http.MethodPut, w.url(i)+"/v1/devices/"+deviceID+"/push", w.tokens[i],
			map[string]string{"provider": w.cfg.Push, "token": w.userName(i)}, nil)
		if err != nil {
			return fmt.Errorf("registering the push target of %s: %w", w.userName(i), err)
		}
		return nil
	})
	w.setupErrors.Add(int64(failed))
	if failed > 0 {
		return fmt.Errorf("loadgen: %d push targets could not be registered: %s", failed, w.firstErr)
	}
	return ctx.Err()
}

// needsAccounts tells whether users need account rows: the server sends 1:1
// messages and adds group members only to existing users. Idle connections
// need none; with minted tokens they skip registration altogether.
func (w *worker) needsAccounts() bool { return w.cfg.Scenario != ScenarioIdle }

// authenticate registers users (an existing one is reused) and logs them in, or,
// with a token secret, mints their tokens (registering only when accounts are
// needed). Registration and login cost the node a bcrypt hash each.
func (w *worker) authenticate(ctx context.Context) error {
	w.tokens = make([]string, w.lay.users)
	var signer *auth.Signer
	if w.cfg.TokenSecret != "" {
		var err error
		if signer, err = auth.NewSigner([]byte(w.cfg.TokenSecret), 24*time.Hour); err != nil {
			return fmt.Errorf("loadgen: -token-secret: %w", err)
		}
	}
	register := signer == nil || w.needsAccounts()
	if register && signer != nil && w.lay.channel && w.channelReady(ctx, signer) {
		register = false // an earlier run made this channel, every member with an account
	}
	failed := w.forEach(ctx, span(0, w.lay.users), w.cfg.RegisterPar, func(ctx context.Context, i int) (err error) {
		if register {
			if err := w.register(ctx, i); err != nil {
				return err
			}
		}
		switch {
		case !w.lay.connects(i): // a channel's offline member needs only its account
		case signer != nil:
			w.tokens[i], err = signer.Issue(w.userName(i), deviceID)
		default:
			w.tokens[i], err = w.login(ctx, i)
		}
		return err
	})
	w.setupErrors.Add(int64(failed))
	switch {
	case failed > 0 && failed == w.lay.users:
		return fmt.Errorf("loadgen: no user could log in: %s", w.firstErr)
	case failed > 0 && len(w.lay.groups) > 0:
		return fmt.Errorf("loadgen: %d users could not log in, so their groups cannot be made: %s", failed, w.firstErr)
	case failed > 0 && w.lay.channel:
		return fmt.Errorf("loadgen: %d users could not be registered or log in, so the channel cannot have them: %s", failed, w.firstErr)
	}
	return ctx.Err()
}

func (w *worker) register(ctx context.Context, i int) error {
	err := w.rest(ctx, http.MethodPost, w.url(i)+"/v1/users", "",
		map[string]string{"username": w.userName(i), "password": password}, nil)
	var apiErr *client.APIError
	if err != nil && !(errors.As(err, &apiErr) && apiErr.Code == "conflict") {
		return fmt.Errorf("registering %s: %w", w.userName(i), err)
	}
	return nil
}

func (w *worker) login(ctx context.Context, i int) (string, error) {
	var s client.Session
	err := w.rest(ctx, http.MethodPost, w.url(i)+"/v1/sessions", "",
		map[string]string{"username": w.userName(i), "password": password, "device": deviceID}, &s)
	if err != nil {
		return "", fmt.Errorf("logging in %s: %w", w.userName(i), err)
	}
	return s.Token, nil
}

// createGroups creates every group, its first member as owner.
func (w *worker) createGroups(ctx context.Context) error {
	w.groups = make([]string, len(w.lay.groups))
	failed := w.forEach(ctx, span(0, len(w.lay.groups)), w.cfg.RegisterPar, func(ctx context.Context, g int) error {
		members := w.lay.groups[g]
		names := make([]string, 0, len(members)-1)
		for _, m := range members[1:] {
			names = append(names, w.userName(m))
		}
		var out struct {
			Group struct {
				ID      string   `json:"id"`
				Members []string `json:"members"`
			} `json:"group"`
		}
		owner := members[0]
		err := w.rest(ctx, http.MethodPost, w.url(owner)+"/v1/groups", w.tokens[owner],
			map[string]any{"name": fmt.Sprintf("loadgen %d", g), "members": names}, &out)
		if err == nil && len(out.Group.Members) != len(members) {
			err = fmt.Errorf("the group has %d members, want %d", len(out.Group.Members), len(members))
		}
		if err != nil {
			return fmt.Errorf("creating group %d: %w", g, err)
		}
		w.groups[g] = out.Group.ID
		return nil
	})
	if failed > 0 {
		return fmt.Errorf("loadgen: %d groups could not be created: %s", failed, w.firstErr)
	}
	return ctx.Err()
}

// forEach runs f for each of idx, par at a time, and returns how many failed
// (each failure is noted with fail). It stops starting new ones when ctx ends.
func (w *worker) forEach(ctx context.Context, idx []int, par int, f func(ctx context.Context, i int) error) int {
	sem := make(chan struct{}, max(1, par))
	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, i := range idx {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return int(failed.Load())
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(ctx, i); err != nil {
				failed.Add(1)
				w.fail("%v", err)
			}
		}()
	}
	wg.Wait()
	return int(failed.Load())
}

// rest makes one REST call with this worker's HTTP client (its connections are
// kept for reuse); an error answer becomes *client.APIError.
func (w *worker) rest(ctx context.Context, method, url, token string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return client.DoWith(w.http, req, out)
}
