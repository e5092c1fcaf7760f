package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// session is a stored login: sessions/USER.json in the config directory.
type session struct {
	URL    string `json:"url"`
	User   string `json:"user"`
	Device string `json:"device"`
	Token  string `json:"token"`
}

var userPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)

// configDir is --config, else PARLEY_CONFIG, else os.UserConfigDir()/parley.
func (e *env) configDir() (string, error) {
	if e.g.config.v != "" {
		return e.g.config.v, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the config directory (set --config or PARLEY_CONFIG): %w", err)
	}
	return filepath.Join(dir, "parley"), nil
}

// sessionUser is the user whose session to use: --as, else the current one.
func (e *env) sessionUser(dir string) (string, error) {
	if e.g.as.v != "" {
		return e.g.as.v, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "current"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", notLoggedIn()
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func notLoggedIn() error {
	return &exitError{code: exitUnauthed, err: errors.New("not logged in: run parley login USER (or parley signup USER)")}
}

// sessionFor checks a command's argument count (want) and loads the session it
// runs as: the first lines of most commands.
func (e *env) sessionFor(args []string, least, most int) (session, error) {
	if err := want(args, least, most); err != nil {
		return session{}, err
	}
	return e.loadSession()
}

// loadSession reads the session in use; none is exit code 3.
func (e *env) loadSession() (session, error) {
	dir, err := e.configDir()
	if err != nil {
		return session{}, err
	}
	user, err := e.sessionUser(dir)
	if err != nil {
		return session{}, err
	}
	if !userPattern.MatchString(user) {
		return session{}, notLoggedIn()
	}
	var s session
	b, err := os.ReadFile(filepath.Join(dir, "sessions", user+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return s, &exitError{code: exitUnauthed, err: fmt.Errorf("not logged in as %s: run parley login %s", user, user)}
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Token == "" {
		return s, &exitError{code: exitUnauthed, err: fmt.Errorf("the stored session of %s is unreadable: run parley login %s", user, user)}
	}
	return s, nil
}

// storedSession reads user's stored session, if there is one (for its device id).
func (e *env) storedSession(user string) (session, bool) {
	dir, err := e.configDir()
	if err != nil || !userPattern.MatchString(user) { // a user id names a file: nothing else may
		return session{}, false
	}
	var s session
	b, err := os.ReadFile(filepath.Join(dir, "sessions", user+".json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return session{}, false
	}
	return s, true
}

// saveSession writes s (mode 0600, directories 0700) and makes it the current one.
func (e *env) saveSession(s session) error {
	if !userPattern.MatchString(s.User) { // the server's answer names the file: never a path
		return fmt.Errorf("the server answered a user id that is none: %q", s.User)
	}
	dir, err := e.configDir()
	if err != nil {
		return err
	}
	sessions := filepath.Join(dir, "sessions")
	if err := privateDir(dir); err != nil {
		return err
	}
	if err := privateDir(sessions); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writePrivate(filepath.Join(sessions, s.User+".json"), append(b, '\n')); err != nil {
		return err
	}
	return writePrivate(filepath.Join(dir, "current"), []byte(s.User+"\n"))
}

// removeSession forgets user's session, and that it is the current one.
func (e *env) removeSession(user string) error {
	if !userPattern.MatchString(user) {
		return nil // no such file can exist
	}
	dir, err := e.configDir()
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, "sessions", user+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if cur, err := os.ReadFile(filepath.Join(dir, "current")); err == nil && strings.TrimSpace(string(cur)) == user {
		return os.Remove(filepath.Join(dir, "current"))
	}
	return nil
}

// privateDir makes dir with mode 0700 if it does not exist. A directory that
// exists is left as it is (--config may name one the user keeps open on purpose,
// their home even); the session files in it are 0600 whatever it is.
func privateDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700) // whatever the umask
}

// writePrivate replaces path's content at once (a temporary file renamed), mode 0600.
func writePrivate(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename it names nothing
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// baseURL is the node to talk to: --url or PARLEY_URL, else the session's, else
// the default.
func (e *env) baseURL(s session) string {
	u := e.g.url.v
	if !e.g.url.set && s.URL != "" {
		u = s.URL
	}
	return strings.TrimRight(u, "/")
}
