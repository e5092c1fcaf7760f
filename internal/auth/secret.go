package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SecretFileMode is the mode of a token key file that [EnsureSecretFile]
// creates: readable by its owner only.
const SecretFileMode = 0o600

// ReadSecretFile reads the token keys in the file at path: its first non-empty
// line is the current key, an optional second one the previous key (see
// [WithPreviousSecret]). Each key is the line's bytes, without surrounding
// white space, and must be at least [MinSecretBytes] long.
func ReadSecretFile(path string) (current, previous []byte, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading token secret file: %w", err)
	}
	var keys [][]byte
	for _, line := range bytes.Split(data, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			keys = append(keys, line)
		}
	}
	switch {
	case len(keys) == 0:
		return nil, nil, fmt.Errorf("token secret file %s holds no key", path)
	case len(keys) > 2:
		return nil, nil, fmt.Errorf("token secret file %s holds %d keys; at most 2 (current, previous)", path, len(keys))
	}
	for i, k := range keys {
		if len(k) < MinSecretBytes {
			return nil, nil, fmt.Errorf("token secret file %s: key %d is %d bytes, need at least %d", path, i+1, len(k), MinSecretBytes)
		}
	}
	if len(keys) == 2 {
		previous = keys[1]
	}
	return keys[0], previous, nil
}

// EnsureSecretFile reads the token keys in the file at path as
// [ReadSecretFile] does. When there is no such file it first creates one, and
// the directories to it (mode 0700), holding a fresh random key (64 hex digits,
// 256 bits) with mode [SecretFileMode]; created says so. Processes that create
// the same file at once all end up with the key of the one that won.
func EnsureSecretFile(path string) (current, previous []byte, created bool, err error) {
	current, previous, err = ReadSecretFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return current, previous, false, err
	}
	if err := writeNewSecret(path); err != nil {
		return nil, nil, false, err
	}
	current, previous, err = ReadSecretFile(path)
	return current, previous, err == nil, err
}

// writeNewSecret writes a fresh key to path unless a file is there already: the
// key goes to a temporary file first, which is then linked to path, so that path
// never holds a partial key.
func writeNewSecret(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating token secret file: %w", err)
	}
	raw := make([]byte, MinSecretBytes)
	_, _ = rand.Read(raw) // crypto/rand.Read never fails
	tmp, err := os.CreateTemp(dir, ".token-secret-*")
	if err != nil {
		return fmt.Errorf("creating token secret file: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(raw) + "\n")
	if err == nil {
		err = tmp.Chmod(SecretFileMode) // CreateTemp makes 0600 already; be explicit
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing token secret file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating token secret file: %w", err)
	}
	return nil
}
