package oauth

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// StaticClient is a pre-registered client from the configuration, for
// clients that cannot register themselves. A confidential client's secret
// is given in exactly one of SecretBcrypt, SecretFile and SecretEnv; a
// public client has none. Secrets read from a file or the environment are
// hashed with bcrypt when the server starts, and only the hash is kept.
type StaticClient struct {
	// ID is the client_id: 1 to 255 printable ASCII characters.
	ID string `yaml:"id"`
	// Name is shown on the login and consent pages.
	Name string `yaml:"name"`
	// SecretBcrypt is the bcrypt hash of the client secret
	// (htpasswd -nbBC 10 "" secret | cut -d: -f2, say).
	SecretBcrypt string `yaml:"secret_bcrypt"`
	// SecretFile names a file holding the secret; one trailing newline is
	// ignored.
	SecretFile string `yaml:"secret_file"`
	// SecretEnv names an environment variable holding the secret.
	SecretEnv string `yaml:"secret_env"`
	// RedirectURIs are matched like registered ones (the port of a loopback
	// http URI is ignored); at least one.
	RedirectURIs []string `yaml:"redirect_uris"`
	// Scopes, when not empty, are the only scopes the client may request
	// (invalid_scope otherwise); without a scope parameter it gets these
	// (within the resource's). Empty allows every scope of the resource.
	Scopes []string `yaml:"scopes"`
	// GrantTypes default to authorization_code and refresh_token;
	// authorization_code is required.
	GrantTypes []string `yaml:"grant_types"`
	// TokenEndpointAuthMethod is none for a public client (the default
	// without a secret), or client_secret_basic or client_secret_post;
	// with a secret and no method both of these are accepted.
	TokenEndpointAuthMethod string `yaml:"token_endpoint_auth_method"`
}

// staticClient is a validated StaticClient.
type staticClient struct {
	client  *registry.Client // the view every endpoint uses; never stored
	hash    []byte           // bcrypt hash of the secret; nil for a public client
	methods []string         // accepted authentication methods
	scopes  []string         // allowed scopes; nil allows all
	// verified is the SHA-256 of the last secret bcrypt accepted, so that a
	// client presenting the right secret is not slowed down by bcrypt on
	// every request.
	verified atomic.Pointer[[sha256.Size]byte]
}

// buildStaticClients validates the configured clients, reads their
// secrets and reports every problem, naming the client.
func buildStaticClients(in []StaticClient) (map[string]*staticClient, error) {
	out := make(map[string]*staticClient, len(in))
	var errs []error
	for i, sc := range in {
		c, err := buildStaticClient(sc)
		if err != nil {
			errs = append(errs, fmt.Errorf("configured client %d (%q): %w", i+1, sc.ID, err))
			continue
		}
		if out[sc.ID] != nil {
			errs = append(errs, fmt.Errorf("configured client %q: configured twice", sc.ID))
			continue
		}
		out[sc.ID] = c
	}
	return out, errors.Join(errs...)
}

func buildStaticClient(sc StaticClient) (*staticClient, error) {
	if sc.ID == "" || len(sc.ID) > 255 || strings.ContainsFunc(sc.ID, func(r rune) bool {
		return r <= ' ' || r >= 0x7f
	}) {
		return nil, errors.New("id must be 1 to 255 printable ASCII characters")
	}
	if err := clientmeta.CheckText(sc.Name, DefaultMaxTextLength); err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	if len(sc.RedirectURIs) == 0 {
		return nil, errors.New("no redirect URI")
	}
	for _, u := range sc.RedirectURIs {
		if err := validateRedirectURI(u); err != nil {
			return nil, fmt.Errorf("redirect URI %q: %w", u, err)
		}
	}
	for _, s := range sc.Scopes {
		if !validScopeToken(s) {
			return nil, fmt.Errorf("invalid scope %q", s)
		}
	}
	grants := sc.GrantTypes
	if len(grants) == 0 {
		grants = []string{grantAuthorizationCode, grantRefreshToken}
	}
	for _, g := range grants {
		if !slices.Contains(supportedGrantTypes, g) {
			return nil, fmt.Errorf("grant type %q is not supported", g)
		}
	}
	if !slices.Contains(grants, grantAuthorizationCode) {
		return nil, errors.New("grant types must include authorization_code")
	}
	hash, err := staticSecretHash(sc)
	if err != nil {
		return nil, err
	}
	methods, err := staticMethods(sc.TokenEndpointAuthMethod, hash != nil)
	if err != nil {
		return nil, err
	}

	out := &staticClient{hash: hash, methods: methods, scopes: clientmeta.Dedupe(sc.Scopes)}
	if len(sc.Scopes) == 0 {
		out.scopes = nil
	}
	out.client = &registry.Client{
		ID: sc.ID, Name: sc.Name, RedirectURIs: clientmeta.Dedupe(sc.RedirectURIs),
		TokenEndpointAuthMethod: methods[0], GrantTypes: clientmeta.Dedupe(grants),
		ResponseTypes: []string{"code"}, Scope: joinScope(out.scopes),
		CreatedAt: time.Unix(0, 0).UTC(),
	}
	return out, nil
}

// staticSecretHash returns the bcrypt hash of a configured client's secret,
// or nil when it has none.
func staticSecretHash(sc StaticClient) ([]byte, error) {
	n := 0
	for _, v := range []string{sc.SecretBcrypt, sc.SecretFile, sc.SecretEnv} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return nil, errors.New("give the secret once: as a bcrypt hash, a file or a variable")
	}
	var secret string
	switch {
	case n == 0:
		return nil, nil
	case sc.SecretBcrypt != "":
		if _, err := bcrypt.Cost([]byte(sc.SecretBcrypt)); err != nil {
			return nil, fmt.Errorf("secret is not a bcrypt hash: %w", err)
		}
		return []byte(sc.SecretBcrypt), nil
	case sc.SecretFile != "":
		b, err := os.ReadFile(sc.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("reading the secret: %w", err)
		}
		secret = strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	default:
		secret = os.Getenv(sc.SecretEnv)
	}
	switch {
	case secret == "":
		return nil, errors.New("the secret is empty")
	case len(secret) > 72:
		return nil, errors.New("the secret is longer than 72 bytes, bcrypt's limit")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	if err != nil {
		return nil, fmt.Errorf("hashing the secret: %w", err)
	}
	return hash, nil
}

// staticMethods returns the authentication methods a configured client may
// use, the registered one first.
func staticMethods(method string, hasSecret bool) ([]string, error) {
	switch {
	case method == "" && hasSecret:
		return []string{authSecretBasic, authSecretPost}, nil
	case method == "" || method == authNone:
		if hasSecret {
			return nil, errors.New("auth method none cannot have a secret")
		}
		return []string{authNone}, nil
	case method == authSecretBasic || method == authSecretPost:
		if !hasSecret {
			return nil, fmt.Errorf("auth method %s needs a secret", method)
		}
		return []string{method}, nil
	}
	return nil, fmt.Errorf("auth method %q: want none, client_secret_basic or "+
		"client_secret_post", method)
}

// authenticate checks the method and secret a configured client presented.
func (sc *staticClient) authenticate(method, secret string) *oauthError {
	unauthorized := func(desc string) *oauthError {
		return newError(http.StatusUnauthorized, errInvalidClient, desc)
	}
	if !slices.Contains(sc.methods, method) {
		return unauthorized("the client must authenticate with " + strings.Join(sc.methods, " or "))
	}
	if sc.hash == nil {
		return nil
	}
	sum := sha256.Sum256([]byte(secret))
	if v := sc.verified.Load(); v != nil && subtle.ConstantTimeCompare(v[:], sum[:]) == 1 {
		return nil
	}
	if bcrypt.CompareHashAndPassword(sc.hash, []byte(secret)) != nil {
		return unauthorized("wrong client secret")
	}
	sc.verified.Store(&sum)
	return nil
}

// checkScope refuses scopes outside the client's allowed ones.
func (sc *staticClient) checkScope(scope []string) *oauthError {
	if sc.scopes == nil {
		return nil
	}
	for _, t := range scope {
		if !slices.Contains(sc.scopes, t) {
			return badRequest(errInvalidScope, "scope "+clientmeta.Truncate(t, 64)+
				" is not allowed for this client")
		}
	}
	return nil
}
