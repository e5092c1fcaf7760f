// Package pushtest holds what tests need to stand in for push services: opening
// a Web Push message as a browser does, and checking its VAPID header.
package pushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DecryptAES128GCM opens a push message as the user agent does (RFC 8291 over
// the aes128gcm coding of RFC 8188).
func DecryptAES128GCM(body []byte, ua *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("short header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if idlen != 65 || len(body) <= 21+idlen || rs < 18 {
		return nil, fmt.Errorf("bad header: rs %d, idlen %d, %d bytes", rs, idlen, len(body))
	}
	asPub, err := ecdh.P256().NewPublicKey(body[21 : 21+idlen])
	if err != nil {
		return nil, fmt.Errorf("keyid: %w", err)
	}
	secret, err := ua.ECDH(asPub)
	if err != nil {
		return nil, err
	}
	info := "WebPush: info\x00" + string(ua.PublicKey().Bytes()) + string(asPub.Bytes())
	ikm, err := hkdf.Key(sha256.New, secret, auth, info, 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	var plain []byte
	rest := body[21+idlen:]
	for seq := uint64(0); len(rest) > 0; seq++ {
		rec := rest[:min(int(rs), len(rest))]
		rest = rest[len(rec):]
		iv := bytes.Clone(nonce)
		for i := range 8 {
			iv[4+i] ^= byte(seq >> (56 - 8*i))
		}
		p, err := gcm.Open(nil, iv, rec, nil)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", seq, err)
		}
		p = bytes.TrimRight(p, "\x00")
		delim := byte(1)
		if len(rest) == 0 {
			delim = 2
		}
		if len(p) == 0 || p[len(p)-1] != delim {
			return nil, fmt.Errorf("record %d: no padding delimiter %d", seq, delim)
		}
		plain = append(plain, p[:len(p)-1]...)
	}
	return plain, nil
}

// VerifyVAPID checks an Authorization header "vapid t=<jwt>, k=<key>": k is
// vapidPub, and the JWT is ES256-signed by it for aud and sub, expiring within 24h.
func VerifyVAPID(header, vapidPub, aud, sub string) error {
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return fmt.Errorf("not a vapid header: %q", header)
	}
	params := map[string]string{}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return fmt.Errorf("bad parameter %q", part)
		}
		params[k] = v
	}
	if params["k"] != vapidPub {
		return fmt.Errorf("k = %q, want %q", params["k"], vapidPub)
	}
	kb, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return err
	}
	key, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), kb)
	if err != nil {
		return err
	}
	tok, err := jwt.Parse(params["t"], func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"ES256"}), jwt.WithAudience(aud), jwt.WithSubject(sub),
		jwt.WithExpirationRequired())
	if err != nil {
		return err
	}
	exp, err := tok.Claims.GetExpirationTime()
	if err != nil {
		return err
	}
	if exp.After(time.Now().Add(24 * time.Hour)) {
		return fmt.Errorf("exp %s is more than 24h away", exp)
	}
	return nil
}
