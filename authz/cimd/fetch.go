package cimd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mcp-authz/mcp-authz/authz/clientmeta"
	"github.com/mcp-authz/mcp-authz/registry"
)

// maxRedirects bounds the same-origin redirects followed by one fetch.
const maxRedirects = 3

var (
	errCrossRedirect = errors.New("redirected to another origin")
	errManyRedirects = errors.New("too many redirects")
)

// fetch gets, validates and parses the document at id (a validated client
// id URL) and returns the client with its cache lifetime.
func (r *Resolver) fetch(ctx context.Context, id string) (*registry.Client, time.Duration,
	error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	u, err := url.Parse(id)
	if err != nil {
		return nil, 0, &Error{Kind: ErrInvalidURL, Detail: "does not parse as a URL"}
	}
	host := u.Hostname()
	addrs, err := r.vet(ctx, host)
	if err != nil {
		return nil, 0, err
	}

	tr := r.transport(host, addrs)
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, CheckRedirect: sameOrigin(u)}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, id, nil)
	if err != nil {
		return nil, 0, &Error{Kind: ErrInvalidURL, Detail: "cannot be requested", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "mcp-authz")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, r.fetchError(err)
	}
	defer resp.Body.Close()

	fail := func(format string, args ...any) error {
		return &Error{Kind: ErrFetch, Detail: fmt.Sprintf(format, args...)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fail("the document URL answered HTTP status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, 0, fail("the document's content type %q is not JSON", clientmeta.Truncate(ct, 60))
	}
	if resp.ContentLength > r.opts.MaxBytes {
		return nil, 0, fail("the document is larger than %d bytes", r.opts.MaxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.opts.MaxBytes+1))
	if err != nil {
		return nil, 0, r.fetchError(err)
	}
	if int64(len(body)) > r.opts.MaxBytes {
		return nil, 0, fail("the document is larger than %d bytes", r.opts.MaxBytes)
	}
	now := r.opts.Now()
	c, err := ParseDocument(id, body, r.opts.ValidateRedirectURI, now)
	if err != nil {
		return nil, 0, err
	}
	ttl, given := ttlOf(resp.Header, now)
	return c, r.lifetime(ttl, given), nil
}

// fetchError classifies a failed request.
func (r *Resolver) fetchError(err error) error {
	e := &Error{Kind: ErrFetch, Detail: "the document could not be fetched", Err: err}
	var addrErr *Error
	switch {
	case errors.As(err, &addrErr):
		return addrErr // a refusal from the dialer
	case errors.Is(err, errCrossRedirect):
		e.Detail = "the document URL redirected to another host"
	case errors.Is(err, errManyRedirects):
		e.Detail = "the document URL redirected too often"
	case errors.Is(err, context.DeadlineExceeded):
		e.Detail = "fetching the document took longer than " + r.opts.Timeout.String()
	}
	return e
}

// vet looks up host and returns its addresses, refusing them all when any
// is not a public address (unless AllowPrivate). No connection is made.
func (r *Resolver) vet(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = r.opts.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, &Error{Kind: ErrFetch, Detail: "the host name could not be resolved",
				Err: err}
		}
		if len(addrs) == 0 {
			return nil, &Error{Kind: ErrFetch, Detail: "the host name has no address"}
		}
	}
	if r.opts.AllowPrivate {
		return addrs, nil
	}
	for _, a := range addrs {
		if blockedAddr(a) {
			return nil, &Error{Kind: ErrAddressRefused,
				Detail: "the host has a loopback, private, link-local or other " +
					"non-public address",
				Err: fmt.Errorf("host %q resolves to %s", host, a)}
		}
	}
	return addrs, nil
}

// transport returns a one-fetch transport that connects only to the vetted
// addresses of host, uses no proxy and keeps no connection.
func (r *Resolver) transport(host string, addrs []netip.Addr) *http.Transport {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, p, err := net.SplitHostPort(addr)
		port, perr := strconv.ParseUint(p, 10, 16)
		if err != nil || perr != nil || !strings.EqualFold(h, host) {
			return nil, &Error{Kind: ErrFetch, Detail: "the document URL redirected to another host",
				Err: fmt.Errorf("refusing to dial %q: not the vetted host %q", addr, host)}
		}
		var errs []error
		for _, a := range addrs {
			c, err := r.opts.DialContext(ctx, "tcp",
				netip.AddrPortFrom(a, uint16(port)).String())
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	return &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		TLSClientConfig:        &tls.Config{RootCAs: r.opts.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    r.opts.Timeout,
		ResponseHeaderTimeout:  r.opts.Timeout,
		MaxResponseHeaderBytes: 32 << 10,
		DisableKeepAlives:      true,
		DisableCompression:     true,
	}
}

// sameOrigin follows redirects within the origin of u only.
func sameOrigin(u *url.URL) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return errManyRedirects
		}
		if req.URL.Scheme != "https" || !strings.EqualFold(req.URL.Host, u.Host) {
			return errCrossRedirect
		}
		return nil
	}
}

// isJSON reports whether a Content-Type is application/json or +json.
func isJSON(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}
