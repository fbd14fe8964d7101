package oauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestWebOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", true},
		{"HTTP://LocalHost:8080", "http://localhost:8080", true},
		{"http://auth.example:80", "http://auth.example", true},
		{"https://auth.example:443", "https://auth.example", true},
		{"https://auth.example:0443", "https://auth.example", true},
		{"https://auth.example:80", "https://auth.example:80", true},
		{"https://auth.example/", "https://auth.example", true},
		{"http://[::1]:8080", "http://[::1]:8080", true},
		{"http://[::1]:80", "http://[::1]", true},
		{"null", "", false},
		{"", "", false},
		{"https://auth.example/path", "", false},
		{"https://auth.example?q", "", false},
		{"https://auth.example#f", "", false},
		{"https://user@auth.example", "", false},
		{"https://auth.example:99999", "", false},
		{"https://auth.example:x", "", false},
		{"//auth.example", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := webOrigin(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("webOrigin(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestIssuerOriginDefaultPort checks that an issuer configured with its
// scheme's default port matches the Origin browsers send without it, and
// the other way round.
func TestIssuerOriginDefaultPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		issuer, origin string
		want           bool
	}{
		{"https://auth.example:443/t1", "https://auth.example", true},
		{"https://auth.example/t1", "https://auth.example:443", true},
		{"http://auth.example:80", "http://auth.example", true},
		{"https://auth.example", "http://auth.example", false},
		{"https://auth.example", "https://auth.example:8443", false},
		{"https://auth.example", "https://evil.auth.example", false},
		{"https://auth.example", "null", false},
	}
	for _, tt := range tests {
		t.Run(tt.issuer+" "+tt.origin, func(t *testing.T) {
			u, _ := url.Parse(tt.issuer)
			o, ok := webOrigin(u.Scheme + "://" + u.Host)
			if !ok {
				t.Fatalf("issuer %q has no origin", tt.issuer)
			}
			s := &Server{origin: o}
			if got := s.isIssuerOrigin(tt.origin); got != tt.want {
				t.Errorf("isIssuerOrigin(%q) with issuer %q = %v, want %v", tt.origin,
					tt.issuer, got, tt.want)
			}
		})
	}
}

// postWith posts form from b with extra request headers.
func (b *browser) postWith(u string, form url.Values, hdr http.Header) *http.Response {
	b.t.Helper()
	req, err := http.NewRequestWithContext(b.t.Context(), http.MethodPost, u,
		strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("POST %s: %v", u, err)
	}
	return resp
}

// TestFormOrigin posts the consent and login forms of /authorize, with the
// browser's cookie and the page's CSRF token, and the Origin and
// Sec-Fetch-Site headers a browser would send from various places: only
// the issuer's own origin (or no header at all) is accepted.
func TestFormOrigin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	iu, _ := url.Parse(e.issuer)
	port := iu.Port()
	sameSite := "http://127.0.0.1:1" // the issuer's host on another port
	if port == "1" {
		sameSite = "http://127.0.0.1:2"
	}

	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		hdr    http.Header
		accept bool
	}{
		{"no headers (old browser)", nil, true},
		{"issuer origin", hdr("Origin", e.issuer), true},
		{"issuer origin in upper case", hdr("Origin", strings.ToUpper(e.issuer)), true},
		{"issuer origin, same-origin", hdr("Origin", e.issuer,
			"Sec-Fetch-Site", "same-origin"), true},
		{"started by the user", hdr("Sec-Fetch-Site", "none"), true},
		{"same-origin alone", hdr("Sec-Fetch-Site", "same-origin"), true},
		{"another port", hdr("Origin", sameSite), false},
		{"another host name", hdr("Origin", "http://localhost:"+port), false},
		{"another scheme", hdr("Origin", "https://127.0.0.1:"+port), false},
		{"another site", hdr("Origin", "https://evil.example"), false},
		{"null origin", hdr("Origin", "null"), false},
		{"origin with a path", hdr("Origin", e.issuer+"/authorize"), false},
		{"two origins", hdr("Origin", e.issuer, "Origin", "https://evil.example"), false},
		{"cross-site", hdr("Sec-Fetch-Site", "cross-site"), false},
		{"same-site", hdr("Sec-Fetch-Site", "same-site"), false},
		{"unknown fetch site", hdr("Sec-Fetch-Site", "elsewhere"), false},
		{"issuer origin but cross-site", hdr("Origin", e.issuer,
			"Sec-Fetch-Site", "cross-site"), false},
		{"same-origin but foreign origin", hdr("Origin", "https://evil.example",
			"Sec-Fetch-Site", "same-origin"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := e.with(t)
			_, challenge := pkce()
			params := authParams(client, webRedirect, challenge)
			params.Set("prompt", "consent") // the consent page, every time

			t.Run("consent", func(t *testing.T) {
				b := e.with(t).browser()
				action, f := e.with(t).loginToConsent(b, params)
				f.Set("consent", "allow")
				resp := b.postWith(action, f, tt.hdr)
				checkFormAnswer(t, resp, tt.accept, http.StatusSeeOther)
				if tt.accept {
					return
				}
				// The refusal consumed nothing: the page still answers.
				resp = b.postWith(action, f, hdr("Origin", e.issuer))
				checkFormAnswer(t, resp, true, http.StatusSeeOther)
			})

			t.Run("login", func(t *testing.T) {
				b := e.with(t).browser()
				resp := b.get(e.issuer + "/authorize?" + params.Encode())
				action, f := parseForm(t, e.issuer, readBody(t, resp))
				f.Set("username", testUser)
				f.Set("password", testPassword)
				resp = b.postWith(action, f, tt.hdr)
				checkFormAnswer(t, resp, tt.accept, http.StatusOK)
				if !tt.accept && len(resp.Cookies()) != 0 {
					t.Errorf("a refused login set cookies %v", resp.Cookies())
				}
			})

			t.Run("consents sign-in", func(t *testing.T) {
				b := e.with(t).browser()
				resp := b.get(e.issuer + "/consents")
				action, f := consentsForm(t, e.issuer, readBody(t, resp), stepLogin)
				f.Set("username", testUser)
				f.Set("password", testPassword)
				resp = b.postWith(action, f, tt.hdr)
				checkFormAnswer(t, resp, tt.accept, http.StatusSeeOther)
			})
		})
	}
}

// checkFormAnswer checks the answer to a posted form: okStatus when
// accept, else the 403 error page, with no redirect.
func checkFormAnswer(t *testing.T, resp *http.Response, accept bool, okStatus int) {
	t.Helper()
	page := readBody(t, resp)
	if accept {
		if resp.StatusCode != okStatus {
			t.Errorf("status %d, want %d:\n%s", resp.StatusCode, okStatus, page)
		}
		return
	}
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(page, "not sent from this server") {
		t.Errorf("status %d, Location %q, want the 403 error page:\n%s", resp.StatusCode,
			resp.Header.Get("Location"), page)
	}
	checkPageHeaders(t, resp)
}

// TestAuthorizationRequestPostCrossSite checks that the authorization
// request itself, posted from the client's site, is not refused: only the
// pages' own forms are.
func TestAuthorizationRequestPostCrossSite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	client := e.publicClient(webRedirect)
	_, challenge := pkce()
	b := e.browser()
	resp := b.postWith(e.issuer+"/authorize", authParams(client, webRedirect, challenge),
		http.Header{"Origin": {"https://app.example"}, "Sec-Fetch-Site": {"cross-site"}})
	page := readBody(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, `name="password"`) {
		t.Errorf("status %d, want the login page:\n%s", resp.StatusCode, page)
	}
}
