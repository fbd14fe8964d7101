package authz

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// TokenType is the JOSE "typ" of access tokens (RFC 9068 §2.1).
const TokenType = "at+jwt"

// maxTokenLen bounds the size of a token Verify will look at.
const maxTokenLen = 8 << 10

// b64 decodes base64url without padding, refusing non-canonical encodings.
var b64 = base64.RawURLEncoding.Strict()

// AccessClaims are the claims of an access token (RFC 9068).
type AccessClaims struct {
	Issuer   string
	Subject  string
	Audience string
	ClientID string
	Scope    string
	JTI      string
	// GrantID names the grant (authorization code and its refresh token
	// family) the token descends from, so the whole grant can be revoked.
	GrantID   string
	IssuedAt  time.Time
	NotBefore time.Time
	ExpiresAt time.Time
}

// wireClaims is the JSON form of AccessClaims. Pointers tell a missing claim
// from an empty one when parsing.
type wireClaims struct {
	Iss      *string  `json:"iss"`
	Sub      *string  `json:"sub"`
	Aud      *string  `json:"aud"`
	ClientID *string  `json:"client_id"`
	Scope    string   `json:"scope,omitempty"`
	JTI      *string  `json:"jti"`
	Grant    string   `json:"grant,omitempty"`
	Iat      *float64 `json:"iat"`
	Nbf      *float64 `json:"nbf,omitempty"`
	Exp      *float64 `json:"exp"`
}

// joseHeader is the part of a JWS protected header Verify looks at.
type joseHeader struct {
	Alg  string          `json:"alg"`
	Kid  string          `json:"kid"`
	Typ  string          `json:"typ"`
	Crit json.RawMessage `json:"crit"`
}

// Tokens mints and verifies access tokens.
type Tokens struct {
	cfg  Config
	keys *Keys
}

// NewTokens returns a token service for cfg signing with keys. cfg is taken
// through WithDefaults; validate it beforehand.
func NewTokens(cfg Config, keys *Keys) *Tokens {
	return &Tokens{cfg: cfg.WithDefaults(), keys: keys}
}

// Mint signs an access token for c, filling Issuer, IssuedAt, ExpiresAt
// and JTI when they are empty. It returns the token and its claims.
//
// Subject, ClientID and Audience are required; Audience must name a
// configured resource and is replaced by its canonical URL. Times are
// truncated to whole seconds, as the token carries them.
func (t *Tokens) Mint(c AccessClaims) (string, AccessClaims, error) {
	if err := t.fillClaims(&c); err != nil {
		return "", c, err
	}
	s := t.keys.current()
	if s.signer == nil {
		return "", c, fmt.Errorf("minting token %q: no signing key", c.JTI)
	}

	payload, err := json.Marshal(toWire(&c))
	if err != nil {
		return "", c, fmt.Errorf("minting token %q: %w", c.JTI, err)
	}
	hdr := jws.NewHeaders()
	for name, v := range map[string]any{
		jws.TypeKey:  TokenType,
		jws.KeyIDKey: s.signer.id,
	} {
		if err := hdr.Set(name, v); err != nil {
			return "", c, fmt.Errorf("minting token %q: header %s: %w", c.JTI, name, err)
		}
	}
	tok, err := jws.Sign(payload,
		jws.WithKey(jwa.ES256, s.signer.priv, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", c, fmt.Errorf("minting token %q: %w", c.JTI, err)
	}
	return string(tok), c, nil
}

func (t *Tokens) fillClaims(c *AccessClaims) error {
	switch {
	case c.Issuer == "":
		c.Issuer = t.cfg.Issuer
	case c.Issuer != t.cfg.Issuer:
		return fmt.Errorf("minting token: issuer %q is not %q", c.Issuer, t.cfg.Issuer)
	}
	if c.Subject == "" || c.ClientID == "" {
		return errors.New("minting token: subject and client id are required")
	}
	r, ok := t.cfg.Resource(c.Audience)
	if !ok {
		return fmt.Errorf("minting token: audience %q is no configured resource", c.Audience)
	}
	c.Audience = r.URL
	if c.JTI == "" {
		id, err := randomID()
		if err != nil {
			return fmt.Errorf("minting token: %w", err)
		}
		c.JTI = id
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = t.keys.now()
	}
	c.IssuedAt = c.IssuedAt.Truncate(time.Second)
	if c.ExpiresAt.IsZero() {
		c.ExpiresAt = c.IssuedAt.Add(t.cfg.AccessTokenTTL)
	}
	c.ExpiresAt = c.ExpiresAt.Truncate(time.Second)
	c.NotBefore = c.NotBefore.Truncate(time.Second)
	if !c.ExpiresAt.After(c.IssuedAt) {
		return fmt.Errorf("minting token %q: expiry %v not after issue", c.JTI, c.ExpiresAt)
	}
	return nil
}

// randomID returns 128 random bits, base64url-encoded.
func randomID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func toWire(c *AccessClaims) *wireClaims {
	w := &wireClaims{
		Iss: &c.Issuer, Sub: &c.Subject, Aud: &c.Audience, ClientID: &c.ClientID,
		Scope: c.Scope, JTI: &c.JTI, Grant: c.GrantID,
		Iat: unixSeconds(c.IssuedAt), Exp: unixSeconds(c.ExpiresAt),
	}
	if !c.NotBefore.IsZero() {
		w.Nbf = unixSeconds(c.NotBefore)
	}
	return w
}

func unixSeconds(t time.Time) *float64 {
	v := float64(t.Unix())
	return &v
}

// Verify checks a token's signature, typ, issuer and times. The Reason says
// why a token was refused; the error carries the detail for the log (never
// the token). On success the Reason is ReasonOK and the error nil.
//
// The audience is not checked here: it depends on the resource asked for.
func (t *Tokens) Verify(raw string, now time.Time) (*AccessClaims, Reason, error) {
	v, reason, err := t.verify(raw, now)
	if err != nil {
		return nil, reason, err
	}
	return &v.claims, ReasonOK, nil
}

// verified is a token that passed Verify, with what the decision needs
// precomputed. It is immutable once built.
type verified struct {
	claims     AccessClaims
	kid        string
	jtiKey     string // registry revocation key of the token
	grantKey   string // registry revocation key of its grant, "" without one
	consentKey string // registry revocation key of its user's consent to the client
	validTo    time.Time
}

func (t *Tokens) verify(raw string, now time.Time) (*verified, Reason, error) {
	if len(raw) > maxTokenLen {
		return nil, ReasonMalformed, fmt.Errorf("token of %d bytes is too long", len(raw))
	}
	h64, rest, ok1 := strings.Cut(raw, ".")
	p64, s64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(s64, ".") || h64 == "" || p64 == "" {
		return nil, ReasonMalformed, errors.New("token is not a compact JWS")
	}
	var hdr joseHeader
	if err := decodeSegment(h64, &hdr); err != nil {
		return nil, ReasonMalformed, fmt.Errorf("token header: %w", err)
	}

	sk, reason, err := t.checkSignature(&hdr, raw[:len(h64)+1+len(p64)], s64)
	if err != nil {
		return nil, reason, err
	}
	if len(hdr.Crit) > 0 {
		return nil, ReasonMalformed, errors.New("token header has unsupported crit")
	}
	typ := strings.TrimPrefix(strings.ToLower(hdr.Typ), "application/")
	if typ != TokenType {
		return nil, ReasonWrongType, fmt.Errorf("token typ %q is not %s", hdr.Typ, TokenType)
	}

	var w wireClaims
	if err := decodeSegment(p64, &w); err != nil {
		return nil, ReasonMalformed, fmt.Errorf("token claims: %w", err)
	}
	v, err := fromWire(&w)
	if err != nil {
		return nil, ReasonMalformed, err
	}
	v.kid = sk.id
	if v.claims.Issuer != t.cfg.Issuer {
		return nil, ReasonWrongIssuer, fmt.Errorf("token iss %q is not %q",
			v.claims.Issuer, t.cfg.Issuer)
	}
	if reason, err := t.checkTimes(&v.claims, now); err != nil {
		return nil, reason, err
	}
	v.validTo = v.claims.ExpiresAt.Add(t.cfg.Leeway)
	return v, ReasonOK, nil
}

// checkSignature checks alg and kid and the ES256 signature over input.
func (t *Tokens) checkSignature(hdr *joseHeader, input, s64 string) (*signingKey, Reason, error) {
	if hdr.Alg != algES256 {
		return nil, ReasonBadSignature, fmt.Errorf("token alg %q is not %s", hdr.Alg, algES256)
	}
	sk := t.keys.lookup(hdr.Kid)
	if sk == nil {
		return nil, ReasonBadSignature, fmt.Errorf("token kid %q unknown", hdr.Kid)
	}
	var sig [64]byte
	if b64.DecodedLen(len(s64)) != len(sig) {
		return nil, ReasonBadSignature, errors.New("token signature is not 64 bytes")
	}
	if _, err := b64.Decode(sig[:], []byte(s64)); err != nil {
		return nil, ReasonBadSignature, fmt.Errorf("token signature: %w", err)
	}
	digest := sha256.Sum256([]byte(input))
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(sk.pub, digest[:], r, s) {
		return nil, ReasonBadSignature, fmt.Errorf("token signature does not verify with %q", sk.id)
	}
	return sk, ReasonOK, nil
}

func (t *Tokens) checkTimes(c *AccessClaims, now time.Time) (Reason, error) {
	lw := t.cfg.Leeway
	if !now.Before(c.ExpiresAt.Add(lw)) {
		return ReasonExpired, fmt.Errorf("token %q expired at %v", c.JTI, c.ExpiresAt)
	}
	if !c.NotBefore.IsZero() && now.Add(lw).Before(c.NotBefore) {
		return ReasonNotYetValid, fmt.Errorf("token %q not valid before %v", c.JTI, c.NotBefore)
	}
	if now.Add(lw).Before(c.IssuedAt) {
		return ReasonNotYetValid, fmt.Errorf("token %q issued in the future at %v",
			c.JTI, c.IssuedAt)
	}
	return ReasonOK, nil
}

// decodeSegment base64url-decodes a JWS segment and unmarshals its JSON
// object into v.
func decodeSegment(seg string, v any) error {
	buf := make([]byte, b64.DecodedLen(len(seg)))
	n, err := b64.Decode(buf, []byte(seg))
	if err != nil {
		return fmt.Errorf("base64url: %w", err)
	}
	buf = buf[:n]
	if len(buf) == 0 || buf[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("json: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data after JSON object")
	}
	return nil
}

func fromWire(w *wireClaims) (*verified, error) {
	if w.Iss == nil || w.Sub == nil || w.Aud == nil || w.ClientID == nil || w.JTI == nil ||
		w.Iat == nil || w.Exp == nil {
		return nil, errors.New("token lacks a required claim")
	}
	if *w.JTI == "" || *w.ClientID == "" {
		return nil, errors.New("token has an empty jti or client_id")
	}
	v := &verified{claims: AccessClaims{
		Issuer: *w.Iss, Subject: *w.Sub, Audience: *w.Aud, ClientID: *w.ClientID,
		Scope: w.Scope, JTI: *w.JTI, GrantID: w.Grant,
	}}
	var err error
	if v.claims.IssuedAt, err = numericDate("iat", *w.Iat); err != nil {
		return nil, err
	}
	if v.claims.ExpiresAt, err = numericDate("exp", *w.Exp); err != nil {
		return nil, err
	}
	if w.Nbf != nil {
		if v.claims.NotBefore, err = numericDate("nbf", *w.Nbf); err != nil {
			return nil, err
		}
	}
	v.jtiKey = "jti:" + v.claims.JTI
	v.consentKey = ConsentRevocationKey(v.claims.Subject, v.claims.ClientID)
	if v.claims.GrantID != "" {
		v.grantKey = "grant:" + v.claims.GrantID
	}
	return v, nil
}

// maxNumericDate keeps NumericDates within what time.Time represents
// comfortably (year 33658).
const maxNumericDate = 1 << 40

func numericDate(name string, f float64) (time.Time, error) {
	if math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, fmt.Errorf("token %s %v out of range", name, f)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), nil
}

// ConsentRevocationKey is the registry revocation key written when subject
// withdraws its consent to clientID: every token issued to that pair up to
// the revocation's CreatedAt is refused, so withdrawal stops access tokens
// of grants without a refresh token too.
func ConsentRevocationKey(subject, clientID string) string {
	return "consent:" + subject + "\x00" + clientID
}
