package auth

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func TestPassword(t *testing.T) {
	tests := []struct {
		name     string
		password string
	}{
		{"ascii", "correct horse battery staple"},
		{"empty", ""},
		{"unicode", "pässwörd-密码"},
		{"exactly 72 bytes", strings.Repeat("p", 72)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hash, err := HashPassword(tt.password, bcrypt.MinCost)
			require.NoError(t, err)
			require.NotEqual(t, tt.password, hash)
			require.True(t, CheckPassword(hash, tt.password))
			require.False(t, CheckPassword(hash, tt.password+"x"))
			require.False(t, CheckPassword(hash, "wrong"))
		})
	}
}

func TestHashPasswordSalted(t *testing.T) {
	a, err := HashPassword("same", bcrypt.MinCost)
	require.NoError(t, err)
	b, err := HashPassword("same", bcrypt.MinCost)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

func TestHashPasswordErrors(t *testing.T) {
	tests := []struct {
		name     string
		password string
		cost     int
		is       error
	}{
		{"73 bytes", strings.Repeat("p", 73), bcrypt.MinCost, ErrPasswordTooLong},
		{"73 bytes of multibyte runes", strings.Repeat("é", 36) + "x", bcrypt.MinCost, ErrPasswordTooLong},
		{"cost too low", "pw", bcrypt.MinCost - 1, nil},
		{"cost too high", "pw", bcrypt.MaxCost + 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := HashPassword(tt.password, tt.cost)
			require.Error(t, err)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestCheckPasswordRejects(t *testing.T) {
	long := strings.Repeat("p", 72)
	hash, err := HashPassword(long, bcrypt.MinCost)
	require.NoError(t, err)
	require.False(t, CheckPassword(hash, long+"extra"), "bytes past 72 must not be ignored")
	require.False(t, CheckPassword("not a hash", "pw"))
	require.False(t, CheckPassword("", ""))
}
