package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/parleychat/parley/client"
)

// The account commands: signup, login, logout, whoami.

var signupCmd = &command{
	name: "signup", args: "USER [flags]", summary: "create an account and log in as it",
	help: passwordHelp,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		display := fs.String("display-name", "", "the name others are shown (default the user id)")
		password := fs.String("password", "", "the password, 8 to 72 bytes (visible to other local users: prefer PARLEY_PASSWORD or the prompt)")
		device := fs.String("device", "", "device id to log in as (default one the server picks)")
		return func(args []string) error {
			if err := want(args, 1, 1); err != nil {
				return err
			}
			user := args[0]
			pw, err := e.password(*password, true)
			if err != nil {
				return err
			}
			body := map[string]string{"username": user, "password": pw}
			if *display != "" {
				body["displayName"] = *display
			}
			base := e.baseURL(session{})
			raw, err := e.call(http.MethodPost, base, "/v1/users", "", body)
			if err != nil {
				return err
			}
			s, err := e.login(base, user, pw, *device)
			if err != nil {
				return fmt.Errorf("signed up, but logging in failed: %w", err)
			}
			if e.g.json {
				e.printRaw(raw)
				return nil
			}
			e.say("signed up %s and logged in on %s (device %s)", s.User, s.URL, s.Device)
			return nil
		}
	},
}

var loginCmd = &command{
	name: "login", args: "USER [flags]", summary: "log in; the session is kept in the config directory",
	help: passwordHelp + `
Logging in again as a user reuses the stored session's device id (so the device's
cursor goes on), unless --device names another.

--json prints {"user","device","url"} (never the token).`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		password := fs.String("password", "", "the password (visible to other local users: prefer PARLEY_PASSWORD or the prompt)")
		device := fs.String("device", "", "device id to log in as (default the stored session's, else one the server picks)")
		return func(args []string) error {
			if err := want(args, 1, 1); err != nil {
				return err
			}
			user, dev := args[0], *device
			if old, ok := e.storedSession(user); ok && dev == "" {
				dev = old.Device
			}
			pw, err := e.password(*password, false)
			if err != nil {
				return err
			}
			s, err := e.login(e.baseURL(session{}), user, pw, dev)
			if err != nil {
				return err
			}
			if e.g.json {
				b, _ := json.Marshal(map[string]string{"user": s.User, "device": s.Device, "url": s.URL})
				e.printRaw(b)
				return nil
			}
			e.say("logged in as %s on %s (device %s)", s.User, s.URL, s.Device)
			return nil
		}
	},
}

// login opens a session and stores it.
func (e *env) login(base, user, password, device string) (session, error) {
	cs, err := client.Login(e.ctx, base, user, password, device)
	if err != nil {
		return session{}, describe(err)
	}
	s := session{URL: base, User: cs.UserID, Device: cs.DeviceID, Token: cs.Token}
	if err := e.saveSession(s); err != nil {
		return s, fmt.Errorf("saving the session: %w", err)
	}
	return s, nil
}

var logoutCmd = &command{
	name: "logout", args: "[flags]", summary: "end the session on the server and forget it here",
	help: `Every token of the session's device stops working, and its open connections are
closed. The stored session is removed even when the server cannot be reached (then
the exit code is 1).`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 0, 0)
			if err != nil {
				return err
			}
			_, callErr := e.api(s, http.MethodDelete, "/v1/sessions/current", nil)
			if err := e.removeSession(s.User); err != nil {
				return err
			}
			if callErr != nil && exitCode(callErr) != exitUnauthed { // refused: it had ended already
				return fmt.Errorf("forgot the session of %s here, but the server did not end it: %w", s.User, callErr)
			}
			e.say("logged out %s", s.User)
			return nil
		}
	},
}

var whoamiCmd = &command{
	name: "whoami", args: "[flags]", summary: "the session in use",
	help: `Prints the stored session's user, device and node (--json: {"user","device","url"}).
It does not ask the server.`,
	setup: func(e *env, fs *flag.FlagSet) func([]string) error {
		return func(args []string) error {
			s, err := e.sessionFor(args, 0, 0)
			if err != nil {
				return err
			}
			if e.g.json {
				b, _ := json.Marshal(map[string]string{"user": s.User, "device": s.Device, "url": e.baseURL(s)})
				e.printRaw(b)
				return nil
			}
			e.fields([][2]string{{"user", s.User}, {"device", s.Device}, {"url", e.baseURL(s)}})
			return nil
		}
	},
}

const passwordHelp = `The password is --password, else PARLEY_PASSWORD, else asked for on the terminal
(not echoed), else the first line of stdin.`

// password finds the password: the flag, PARLEY_PASSWORD, a prompt on a terminal,
// or stdin's first line.
func (e *env) password(flagValue string, confirm bool) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if pw := e.getenv("PARLEY_PASSWORD"); pw != "" {
		return pw, nil
	}
	if f, ok := e.in.(*os.File); ok && isTerminal(f) {
		pw, err := prompt(f, e.err, "password: ")
		if err != nil {
			return "", err
		}
		if confirm {
			again, err := prompt(f, e.err, "again: ")
			if err != nil {
				return "", err
			}
			if again != pw {
				return "", usageErrorf("the passwords differ")
			}
		}
		return pw, nil
	}
	line, _ := bufio.NewReader(e.in).ReadString('\n')
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", usageErrorf("no password: give --password, PARLEY_PASSWORD or a line on stdin")
	}
	return line, nil
}
