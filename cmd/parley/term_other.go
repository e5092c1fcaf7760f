//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package main

import (
	"errors"
	"io"
	"os"
)

// isTerminal is false where the terminal cannot be put out of echo: the password
// is read from stdin's first line instead.
func isTerminal(*os.File) bool { return false }

func prompt(*os.File, io.Writer, string) (string, error) {
	return "", errors.New("no terminal prompt on this system")
}
