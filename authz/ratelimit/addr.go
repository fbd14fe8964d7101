package ratelimit

import (
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds how many X-Forwarded-For entries are examined.
const maxForwardedHops = 32

// ClientAddr returns the address of the client that sent r. It is the
// connection's peer unless the peer is within trusted; then it is the
// rightmost X-Forwarded-For entry that is not within trusted (the last hop
// a trusted proxy vouched for), or the leftmost entry when all are trusted.
// An entry that does not parse ends the walk at the hop before it. The zero
// Addr means the peer address is unknown (a Unix socket).
func ClientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	addr := parseAddr(r.RemoteAddr)
	if !addr.IsValid() || !contains(trusted, addr) {
		return addr
	}
	hops := forwardedHops(r.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0 && len(hops)-i <= maxForwardedHops; i-- {
		hop := parseAddr(hops[i])
		if !hop.IsValid() {
			return addr
		}
		addr = hop
		if !contains(trusted, addr) {
			return addr
		}
	}
	return addr
}

// Forwarded reports whether r carries an X-Forwarded-For header, so that
// callers can warn when it is ignored because the peer is not trusted.
func Forwarded(r *http.Request) bool { return r.Header.Get("X-Forwarded-For") != "" }

// Key returns the limiter key of a client address: the address itself for
// IPv4, its /64 prefix for IPv6, "unknown" for the zero Addr.
func Key(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// ParsePrefixes reads addresses and CIDR prefixes ("10.0.0.0/8", "::1");
// a bare address is a prefix of its full length.
func ParsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// LoopbackPrefixes are 127.0.0.0/8 and ::1, the addresses of a proxy on the
// same host (a sidecar).
var LoopbackPrefixes = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
}

func contains(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr reads "ip", "ip:port" or "[ip]:port", dropping an IPv6 zone and
// unmapping IPv4-mapped IPv6 addresses.
func parseAddr(s string) netip.Addr {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("")
}

// forwardedHops splits X-Forwarded-For values into entries, in order.
func forwardedHops(vals []string) []string {
	var hops []string
	for _, v := range vals {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, h)
		}
	}
	return hops
}
