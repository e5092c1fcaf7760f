package auth

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// Finding 8: a generated key goes to a file of the owner's only, and is reused.
func TestEnsureSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "parley", "token-secret")
	cur, prev, created, err := EnsureSecretFile(path)
	require.NoError(t, err)
	require.True(t, created)
	require.Nil(t, prev)
	require.Len(t, cur, 64, "256 bits as hex")
	info, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(SecretFileMode), info.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dir.Mode().Perm())

	again, _, created, err := EnsureSecretFile(path)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, cur, again, "the key is reused")
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file is left")
}

func TestEnsureSecretFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token-secret")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, _, _, err := EnsureSecretFile(path)
			if err == nil {
				keys[i] = k
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		require.Equal(t, keys[0], k, "every process gets the same key")
	}
	require.NotEmpty(t, keys[0])
}

func TestReadSecretFile(t *testing.T) {
	k1, k2 := strings.Repeat("a", 32), strings.Repeat("b", 40)
	cases := []struct {
		name, body string
		cur, prev  string
		err        string
	}{
		{"one key", k1 + "\n", k1, "", ""},
		{"no newline", k1, k1, "", ""},
		{"current and previous", "\n" + k1 + "\r\n\n  " + k2 + "  \n", k1, k2, ""},
		{"empty", "\n\n", "", "", "holds no key"},
		{"three keys", k1 + "\n" + k2 + "\n" + k1 + "\n", "", "", "at most 2"},
		{"short key", "short\n", "", "", "key 1 is 5 bytes"},
		{"short previous", k1 + "\nshort\n", "", "", "key 2 is 5 bytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			require.NoError(t, os.WriteFile(path, []byte(c.body), 0o600))
			cur, prev, err := ReadSecretFile(path)
			if c.err != "" {
				require.ErrorContains(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, c.cur, string(cur))
			require.Equal(t, c.prev, string(prev))
		})
	}
	_, _, err := ReadSecretFile(filepath.Join(t.TempDir(), "absent"))
	require.ErrorIs(t, err, os.ErrNotExist)
}
