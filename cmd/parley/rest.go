package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/parleychat/parley/client"
)

// call runs one HTTP request against base and returns the answer's body; an error
// answer becomes *client.APIError (worded by describe). token "" sends none.
func (e *env) call(method, base, path, token string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, base+path, rd)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := e.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if res.StatusCode >= 300 {
		var eb struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(raw, &eb)
		return nil, describe(&client.APIError{Status: res.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message})
	}
	return raw, nil
}

// api is call with the stored session against its node.
func (e *env) api(s session, method, path string, body any) ([]byte, error) {
	return e.call(method, e.baseURL(s), path, s.Token, body)
}

// apiInto is api that decodes the answer into out.
func (e *env) apiInto(s session, method, path string, body, out any) ([]byte, error) {
	raw, err := e.api(s, method, path, body)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return raw, fmt.Errorf("decoding the answer of %s %s: %w", method, path, err)
	}
	return raw, nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// printRaw writes a JSON answer as the server sent it, ending in one newline.
func (e *env) printRaw(raw []byte) {
	raw = bytes.TrimRight(raw, "\n")
	if len(raw) == 0 {
		return
	}
	_, _ = e.out.Write(append(raw, '\n'))
}

// table prints rows under a header, aligned in columns.
func (e *env) table(header []string, rows [][]string) {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(clean(r), "\t"))
	}
	_ = tw.Flush()
	for line := range strings.Lines(b.String()) { // no padding after the last cell
		fmt.Fprintln(e.out, strings.TrimRight(line, " \n"))
	}
}

// fields prints name: value lines, aligned.
func (e *env) fields(kv [][2]string) {
	tw := tabwriter.NewWriter(e.out, 0, 0, 2, ' ', 0)
	for _, f := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], cleanOne(f[1]))
	}
	_ = tw.Flush()
}

// clean keeps tabs and line breaks (and other control characters) out of cells,
// where they would break the columns or the terminal.
func clean(r []string) []string {
	out := make([]string, len(r))
	for i, s := range r {
		out[i] = cleanOne(s)
	}
	return out
}

func cleanOne(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return ' '
		}
		return r
	}, s)
}

// say prints a line for people; --json output stays parsable, so it goes to stderr then.
func (e *env) say(format string, a ...any) {
	w := e.out
	if e.g.json {
		w = e.err
	}
	fmt.Fprintf(w, format+"\n", a...)
}

// clock formats a Unix-ms time in local time: the time of day, with the date
// when it is not today.
func clock(ms int64) string {
	if ms <= 0 {
		return "-"
	}
	t := time.UnixMilli(ms).Local()
	now := time.Now()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04:05")
	}
	if t.Year() == now.Year() {
		return t.Format("Jan 2 15:04")
	}
	return t.Format("2006-01-02 15:04")
}

// short cuts an opaque id for tables (-v shows it whole).
func (e *env) short(id string) string {
	if e.g.verbose || len(id) <= 12 {
		return id
	}
	return id[:8] + "…"
}
