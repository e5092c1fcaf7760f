package soak

import (
	"bufio"
	"cmp"
	"io"
	"os"
	"slices"
	"strings"
)

// The nodes' logs (slog text) are summed up at the end: lines by level, the
// most frequent warning and error messages, and anything that looks like a
// crash.

// LogSummary is one node slot's log (all its processes).
type LogSummary struct {
	Node   int            `json:"node"`
	Path   string         `json:"path"`
	Lines  int            `json:"lines"`
	Levels map[string]int `json:"levels"`
	// Top are the most frequent WARN and ERROR messages.
	Top []LogCount `json:"top"`
	// Crashes are lines of panics, fatal errors and data races.
	Crashes []string `json:"crashes,omitempty"`
}

// LogCount is a message and how often it was logged.
type LogCount struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
	Lib   string `json:"lib,omitempty"` // protoactor's lines carry lib=protoactor
	Count int    `json:"count"`
}

const topMessages = 8

// summarizeLog reads one log.
func summarizeLog(node int, path string) (LogSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return LogSummary{Node: node, Path: path}, err
	}
	defer f.Close()
	s := scanLog(f)
	s.Node, s.Path = node, path
	return s, nil
}

func scanLog(r io.Reader) LogSummary {
	s := LogSummary{Levels: map[string]int{}}
	counts := map[LogCount]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		s.Lines++
		if isCrash(line) && len(s.Crashes) < maxExamples {
			s.Crashes = append(s.Crashes, line)
		}
		level := field(line, "level")
		if level == "" {
			continue
		}
		s.Levels[level]++
		if level == "WARN" || level == "ERROR" {
			counts[LogCount{Level: level, Msg: field(line, "msg"), Lib: field(line, "lib")}]++
		}
	}
	for k, n := range counts {
		k.Count = n
		s.Top = append(s.Top, k)
	}
	slices.SortFunc(s.Top, func(a, b LogCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Level, b.Level), cmp.Compare(a.Msg, b.Msg))
	})
	if len(s.Top) > topMessages {
		s.Top = s.Top[:topMessages]
	}
	return s
}

func isCrash(line string) bool {
	return strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") ||
		strings.Contains(line, "WARNING: DATA RACE")
}

// field is the value of key=value in an slog text line ("" if absent); a quoted
// value is unquoted.
func field(line, key string) string {
	i := 0
	for {
		j := strings.Index(line[i:], key+"=")
		if j < 0 {
			return ""
		}
		j += i
		if j == 0 || line[j-1] == ' ' {
			v := line[j+len(key)+1:]
			if strings.HasPrefix(v, `"`) {
				return unquote(v)
			}
			v, _, _ = strings.Cut(v, " ")
			return v
		}
		i = j + 1
	}
}

// unquote reads a Go-quoted string at the start of v, up to its closing quote.
func unquote(v string) string {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			if i+1 < len(v) {
				i++
				b.WriteByte(v[i])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
