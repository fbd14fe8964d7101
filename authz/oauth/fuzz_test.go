package oauth

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseClientMetadata checks that any registration body either is
// refused with an RFC 7591 error or yields a client whose every redirect URI
// validates and that is registered for the code flow only.
func FuzzParseClientMetadata(f *testing.F) {
	f.Add([]byte(`{"redirect_uris":["https://claude.ai/api/mcp/auth_callback"],` +
		`"token_endpoint_auth_method":"client_secret_post"}`))
	f.Add([]byte(`{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback",` +
		`"http://localhost:8787/callback"],"token_endpoint_auth_method":"none"}`))
	f.Add([]byte(`{"redirect_uris":["http://127.0.0.1"],"grant_types":["refresh_token",` +
		`"authorization_code","urn:ietf:params:oauth:grant-type:device_code"]}`))
	f.Add([]byte(`{"redirect_uris":"x"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, e := parseClientMetadata(body)
		if e != nil {
			if c != nil || e.Status != 400 ||
				(e.Code != errInvalidClientMetadata && e.Code != errInvalidRedirectURI) {
				t.Fatalf("bad refusal %+v, client %+v", e, c)
			}
			return
		}
		if len(c.RedirectURIs) == 0 {
			t.Fatal("client without redirect URIs")
		}
		for _, u := range c.RedirectURIs {
			if err := validateRedirectURI(u); err != nil {
				t.Fatalf("accepted invalid redirect URI %q: %v", u, err)
			}
		}
		if !slices.Contains(c.GrantTypes, grantAuthorizationCode) ||
			!slices.Equal(c.ResponseTypes, []string{"code"}) ||
			!slices.Contains(supportedAuthMethods, c.TokenEndpointAuthMethod) {
			t.Fatalf("accepted client %+v", c)
		}
		if _, err := json.Marshal(clientInfoOf(c, "")); err != nil {
			t.Fatalf("answer does not encode: %v", err)
		}
	})
}

// FuzzRedirectURI checks the redirect URI rules: a valid URI matches itself;
// a URI that matches a registered one other than itself is a loopback http
// URI on the same host that validates; nothing that matches can carry a
// fragment or user info.
func FuzzRedirectURI(f *testing.F) {
	f.Add("http://127.0.0.1/", "http://127.0.0.1:33418/")
	f.Add("http://localhost:8787/callback", "http://localhost:1/callback")
	cursor := "cursor://anysphere.cursor-mcp/oauth/callback"
	f.Add(cursor, cursor)
	f.Add("https://claude.ai/api/mcp/auth_callback", "https://claude.ai:444/api/mcp/auth_callback")
	f.Add("http://[::1]/cb", "http://evil@[::1]:5/cb")
	f.Add("javascript:alert(1)", "javascript:alert(1)")
	f.Fuzz(func(t *testing.T, registered, requested string) {
		regOK := validateRedirectURI(registered) == nil
		if regOK && !matchRedirectURI([]string{registered}, registered) {
			t.Fatalf("%q does not match itself", registered)
		}
		if !regOK || !matchRedirectURI([]string{registered}, requested) {
			return
		}
		if requested == registered {
			return
		}
		if err := validateRedirectURI(requested); err != nil {
			t.Fatalf("%q matched %q but is invalid: %v", requested, registered, err)
		}
		req, _ := url.Parse(requested)
		reg, _ := url.Parse(registered)
		if !strings.EqualFold(req.Scheme, "http") || !IsLoopbackHost(req.Hostname()) ||
			!strings.EqualFold(req.Hostname(), reg.Hostname()) || req.User != nil ||
			strings.Contains(requested, "#") {
			t.Fatalf("%q matched %q", requested, registered)
		}
	})
}

// FuzzCheckLoginCSRF checks that a login form's CSRF token, which comes from
// the browser, is accepted only as loginCSRF made it for that binding, and
// only within its lifetime.
func FuzzCheckLoginCSRF(f *testing.F) {
	shown := time.Unix(1_800_000_000, 0)
	f.Add(loginCSRF("binding", shown), "binding", int64(0))
	f.Add(loginCSRF("binding", shown), "other", int64(0))
	f.Add(loginCSRF("binding", shown), "binding", int64(3600))
	f.Add("1800000000.", "binding", int64(0))
	f.Add("-1.x", "", int64(0))
	f.Add("99999999999999999999.abc", "b", int64(0))
	f.Fuzz(func(t *testing.T, token, binding string, after int64) {
		now := shown.Add(time.Duration(after) * time.Second)
		got := checkLoginCSRF(token, []string{binding}, now, time.Minute)
		ts, _, _ := strings.Cut(token, ".")
		n, err := strconv.ParseInt(ts, 10, 64)
		madeFor := err == nil && binding != "" && token == loginCSRF(binding, time.Unix(n, 0))
		fresh := now.Before(time.Unix(n, 0).Add(time.Minute))
		switch {
		case got != loginFormForeign && !madeFor:
			t.Fatalf("accepted a token not made for %q: %q", binding, token)
		case got == loginFormOK && !fresh:
			t.Fatalf("accepted an expired token %q at %v", token, now)
		case madeFor && fresh && got != loginFormOK:
			t.Fatalf("refused a fresh token: %d", got)
		}
	})
}
