package soak

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/parleychat/parley/client"
	"github.com/parleychat/parley/internal/convid"
	"github.com/parleychat/parley/internal/wire"
)

// Setup: the users (registered over REST, tokens minted with the nodes' secret)
// and the groups (created by their first member, slow readers added to each).

const (
	password = "soak-password"
	device   = "soak" // every session's device
	restPar  = 16     // REST calls at once
)

// makeUsers lays the users out: the 1:1 pairs, the group members, the slow
// readers; node homes and encodings go round robin.
func makeUsers(cfg *Config, prefix string) []*user {
	var us []*user
	add := func(k kind, name string) *user {
		i := len(us)
		u := &user{idx: i, name: name, kind: k, home: i % cfg.Nodes, enc: wire.JSON}
		if i%4 == 3 {
			u.enc = wire.Proto
		}
		us = append(us, u)
		return u
	}
	for p := range cfg.Pairs {
		a := add(kindDM, fmt.Sprintf("%s-d%d", prefix, 2*p))
		b := add(kindDM, fmt.Sprintf("%s-d%d", prefix, 2*p+1))
		a.to, b.to = b.name, a.name
		conv := convid.DirectID(a.name, b.name)
		a.convs, b.convs = []string{conv}, []string{conv}
	}
	for g := range cfg.Groups {
		for m := range cfg.Members {
			add(kindGroup, fmt.Sprintf("%s-g%d-%d", prefix, g, m))
		}
	}
	for i := range cfg.Slow {
		add(kindSlow, fmt.Sprintf("%s-s%d", prefix, i)).quiet = i%2 == 1
	}
	for _, u := range us {
		switch u.kind {
		case kindDM:
			u.rate = cfg.DMRate
			u.reconnects = mrand.Float64() < cfg.ReconnectShare
		case kindGroup:
			u.rate = cfg.GroupRate / float64(cfg.Members)
			u.reconnects = mrand.Float64() < cfg.ReconnectShare
		}
	}
	return us
}

func randomPrefix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "sk" + hex.EncodeToString(b[:])
}

// setup registers the users, mints their tokens and creates the groups.
func (r *run) setup(ctx context.Context) error {
	if err := r.forEach(ctx, len(r.users), func(ctx context.Context, i int) error {
		u := r.users[i]
		err := r.rest(ctx, r.cfg.nodeURL(i%r.cfg.Nodes)+"/v1/users", "", map[string]string{"username": u.name, "password": password}, nil)
		var ae *client.APIError
		if err != nil && !(errors.As(err, &ae) && ae.Code == "conflict") {
			return fmt.Errorf("registering %s: %w", u.name, err)
		}
		u.token, err = r.signer.Issue(u.name, device)
		return err
	}); err != nil {
		return err
	}
	return r.forEach(ctx, r.cfg.Groups, func(ctx context.Context, g int) error { return r.createGroup(ctx, g) })
}

func (r *run) createGroup(ctx context.Context, g int) error {
	first := 2*r.cfg.Pairs + g*r.cfg.Members
	members := r.users[first : first+r.cfg.Members]
	slow := r.users[2*r.cfg.Pairs+r.cfg.Groups*r.cfg.Members:]
	owner := members[0]
	var names []string
	for _, u := range append(slices.Clone(members[1:]), slow...) {
		names = append(names, u.name)
	}
	var out struct {
		Group struct {
			ID      string   `json:"id"`
			Members []string `json:"members"`
		} `json:"group"`
	}
	if err := r.rest(ctx, r.cfg.nodeURL(g%r.cfg.Nodes)+"/v1/groups", owner.token,
		map[string]any{"name": fmt.Sprintf("soak %d", g), "members": names}, &out); err != nil {
		return fmt.Errorf("creating group %d: %w", g, err)
	}
	if len(out.Group.Members) != len(names)+1 {
		return fmt.Errorf("group %d has %d members, want %d", g, len(out.Group.Members), len(names)+1)
	}
	conv := convid.GroupID(out.Group.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range members {
		u.group, u.convs = out.Group.ID, []string{conv}
	}
	for _, u := range slow {
		u.convs = append(u.convs, conv)
	}
	return nil
}

// forEach runs f for 0..n-1, restPar at a time, and returns the failures.
func (r *run) forEach(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	sem := make(chan struct{}, restPar)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(ctx, i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Errorf("and %d more", len(errs)-3))
	}
	return errors.Join(errs...)
}

// rest makes one REST call; an error answer becomes *client.APIError.
func (r *run) rest(ctx context.Context, url, token string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return client.DoWith(r.http, req, out)
}
