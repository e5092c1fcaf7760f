package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/parleychat/parley/persistence"
)

// AddContact adds contact to user's contacts at ms (Unix ms), unless user already
// has limit (0: no cap): persistence.ErrLimit. Adding a contact twice is not an error.
// persistence.ErrNotFound if contact is not a user. The user's row is locked while
// its contacts are counted, so that concurrent adds cannot pass the limit.
func (s *Store) AddContact(ctx context.Context, user, contact string, ms int64, limit int) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, contact).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return persistence.ErrNotFound
		}
		// Lock first, count after: a count in the locking statement would read the
		// snapshot from before the wait for the lock.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, user); err != nil {
			return err
		}
		var n int
		var have bool
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(bool_or(contact_id = $2), false)
			FROM contacts WHERE user_id = $1`, user, contact).Scan(&n, &have); err != nil {
			return err
		}
		if have {
			return nil
		}
		if limit > 0 && n >= limit {
			return persistence.ErrLimit
		}
		_, err := tx.Exec(ctx, `INSERT INTO contacts (user_id, contact_id, added_at) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, user, contact, ms)
		return err
	})
	if err != nil && !errors.Is(err, persistence.ErrNotFound) && !errors.Is(err, persistence.ErrLimit) {
		return fmt.Errorf("adding contact %s of %s: %w", contact, user, mapErr(err))
	}
	return err
}

// RemoveContact removes contact from user's contacts; removing one that is not
// there is not an error.
func (s *Store) RemoveContact(ctx context.Context, user, contact string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM contacts WHERE user_id = $1 AND contact_id = $2`, user, contact); err != nil {
		return fmt.Errorf("removing contact %s of %s: %w", contact, user, mapErr(err))
	}
	return nil
}

// Contacts lists user's contacts, in the order they were added.
func (s *Store) Contacts(ctx context.Context, user string) ([]persistence.Contact, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.id, u.display_name, u.last_seen, u.presence_visibility,
			EXISTS (SELECT 1 FROM contacts b WHERE b.user_id = c.contact_id AND b.contact_id = c.user_id)
		FROM contacts c JOIN users u ON u.id = c.contact_id
		WHERE c.user_id = $1 ORDER BY c.added_at, c.contact_id`, user)
	if err != nil {
		return nil, fmt.Errorf("listing contacts of %s: %w", user, mapErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (persistence.Contact, error) {
		var c persistence.Contact
		err := r.Scan(&c.ID, &c.DisplayName, &c.LastSeen, &c.Visibility, &c.AddedMe)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing contacts of %s: %w", user, mapErr(err))
	}
	return out, nil
}

// Visibility is who may see user's presence (a persistence.Visible* constant),
// and whether user has added viewer (which VisibleToContacts asks).
func (s *Store) Visibility(ctx context.Context, user, viewer string) (visibility string, addedViewer bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT presence_visibility,
			EXISTS (SELECT 1 FROM contacts WHERE user_id = $1 AND contact_id = $2)
		FROM users WHERE id = $1`, user, viewer).Scan(&visibility, &addedViewer)
	if err != nil {
		return "", false, fmt.Errorf("loading presence visibility of %s: %w", user, mapErr(err))
	}
	return visibility, addedViewer, nil
}

// SetVisibility sets who may see user's presence (a persistence.Visible* constant).
func (s *Store) SetVisibility(ctx context.Context, user, visibility string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET presence_visibility = $2 WHERE id = $1`, user, visibility)
	if err != nil {
		return fmt.Errorf("setting presence visibility of %s: %w", user, mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("setting presence visibility of %s: %w", user, persistence.ErrNotFound)
	}
	return nil
}

// SetOnline records, in the next group commit, that user is online (online true,
// since Unix ms) with its connections held by holder's node, or that it went offline
// there (online false: the row goes only if it is still holder's). done (may be nil)
// is called on a committer goroutine.
func (s *Store) SetOnline(user, holder string, online bool, since int64, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.side.submit(op{kind: kindPresence, key: user,
		arg: &presenceWrite{user: user, holder: holder, since: since, online: online}, done: done})
}

// SetDisconnected records, in the next group commit, that user's last connection
// on holder's node went: the online row stays for the presence grace, but a message
// now makes a push. done (may be nil) is called on a committer goroutine.
func (s *Store) SetDisconnected(user, holder string, done func(error)) {
	if done == nil {
		done = func(error) {}
	}
	s.side.submit(op{kind: kindPresence, key: user,
		arg: &presenceWrite{user: user, holder: holder, disconnected: true}, done: done})
}

// onlineCheck is whether the user in column %s is online: it has a row, and the row's
// node still holds its lease. A scalar subquery, not EXISTS: Postgres turns an
// EXISTS into a join, which it may start from the online rows.
const onlineCheck = `(SELECT 1 FROM presence_online o JOIN node_leases l ON l.holder = o.holder
	AND l.expires_at >= now() WHERE o.user_id = %s LIMIT 1) IS NOT NULL`

// OnlinePeers lists, in one round trip, the users who added user and are online
// now (its watchers) and the contacts of user who are online now. It starts from the
// user's own contact rows and probes each peer's online row: the number of users
// online does not enter (a plan that scanned the online rows would cost every
// connect a look at every user online: 19k idle connections set up at 318 a second).
func (s *Store) OnlinePeers(ctx context.Context, user string) (watchers, contacts []string, err error) {
	rows, err := s.pool.Query(ctx, `SELECT true, c.user_id FROM contacts c
		WHERE c.contact_id = $1 AND `+fmt.Sprintf(onlineCheck, "c.user_id")+`
		UNION ALL
		SELECT false, c.contact_id FROM contacts c
		WHERE c.user_id = $1 AND `+fmt.Sprintf(onlineCheck, "c.contact_id"), user)
	if err != nil {
		return nil, nil, fmt.Errorf("reading who is online for %s: %w", user, mapErr(err))
	}
	defer rows.Close()
	for rows.Next() {
		var watcher bool
		var id string
		if err := rows.Scan(&watcher, &id); err != nil {
			return nil, nil, mapErr(err)
		}
		if watcher {
			watchers = append(watchers, id)
		} else {
			contacts = append(contacts, id)
		}
	}
	return watchers, contacts, mapErr(rows.Err())
}

// ContactIDs lists the ids of user's contacts.
func (s *Store) ContactIDs(ctx context.Context, user string) ([]string, error) {
	return s.ids(ctx, `SELECT contact_id FROM contacts WHERE user_id = $1`, user)
}

func (s *Store) ids(ctx context.Context, query, arg string) ([]string, error) {
	rows, err := s.pool.Query(ctx, query, arg)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, mapErr(err)
}

// DeleteStaleOnline removes the online rows of nodes whose id lease lapsed (they
// died without taking their users offline). Readers ignore such rows already; this
// keeps the table the size of who is online.
func (s *Store) DeleteStaleOnline(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM presence_online p WHERE NOT EXISTS (
		SELECT 1 FROM node_leases l WHERE l.holder = p.holder AND l.expires_at >= now())`)
	if err != nil {
		return fmt.Errorf("removing stale online rows: %w", mapErr(err))
	}
	return nil
}
