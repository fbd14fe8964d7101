package e2e

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
)

// A user agent that fills mcp-authz's login and consent forms the way a
// person would: it reads the one form on each page, keeps every hidden field,
// adds what the user types and follows redirects until the client's
// redirect URI.
var (
	formRE  = regexp.MustCompile(`(?s)<form[^>]*\baction="([^"]*)"`)
	inputRE = regexp.MustCompile(`<input[^>]*\bname="([^"]*)"[^>]*\bvalue="([^"]*)"`)
)

type userAgent struct {
	http        *http.Client
	redirectURI string
}

func newUserAgent(redirectURI string) *userAgent {
	jar, _ := cookiejar.New(nil)
	return &userAgent{
		redirectURI: redirectURI,
		http: &http.Client{
			Jar: jar,
			CheckRedirect: func(req *http.Request, _ []*http.Request) error {
				if strings.HasPrefix(req.URL.String(), redirectURI) {
					return http.ErrUseLastResponse
				}
				return nil
			},
		},
	}
}

// authorize opens authURL, logs in as user and approves the consent. It
// returns the query of the final redirect to the client.
func (u *userAgent) authorize(ctx context.Context, authURL, user, password string) (url.Values, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, err := u.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", authURL, err)
	}
	for step := 0; step < 4; step++ {
		if q, done, err := u.redirected(resp); done || err != nil {
			return q, err
		}
		page, err := readPage(resp)
		if err != nil {
			return nil, err
		}
		fields := page.fields
		switch {
		case strings.Contains(page.body, `name="password"`):
			fields.Set("username", user)
			fields.Set("password", password)
		case strings.Contains(page.body, `name="consent"`):
			fields.Set("consent", "allow")
		default:
			return nil, fmt.Errorf("page without a login or consent form (%d):\n%s",
				resp.StatusCode, page.body)
		}
		resp, err = u.http.PostForm(page.action, fields)
		if err != nil {
			return nil, fmt.Errorf("posting to %s: %w", page.action, err)
		}
	}
	return nil, fmt.Errorf("no redirect to %s after four pages", u.redirectURI)
}

func (u *userAgent) redirected(resp *http.Response) (url.Values, bool, error) {
	loc := resp.Header.Get("Location")
	if resp.StatusCode < 300 || resp.StatusCode >= 400 || !strings.HasPrefix(loc, u.redirectURI) {
		return nil, false, nil
	}
	resp.Body.Close()
	lu, err := url.Parse(loc)
	if err != nil {
		return nil, true, fmt.Errorf("parsing redirect %q: %w", loc, err)
	}
	return lu.Query(), true, nil
}

type page struct {
	action string
	fields url.Values
	body   string
}

func readPage(resp *http.Response) (*page, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	body := string(b)
	m := formRE.FindStringSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("no form on the page (%d):\n%s", resp.StatusCode, body)
	}
	action, err := resp.Request.URL.Parse(html.UnescapeString(m[1]))
	if err != nil {
		return nil, fmt.Errorf("form action %q: %w", m[1], err)
	}
	fields := url.Values{}
	for _, in := range inputRE.FindAllStringSubmatch(body, -1) {
		fields.Set(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	return &page{action: action.String(), fields: fields, body: body}, nil
}
