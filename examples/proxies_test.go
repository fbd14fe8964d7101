package examples_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/envoy"
)

// --- nginx -------------------------------------------------------------------

// directive is one nginx directive with its block, if any.
type directive struct {
	name  string
	args  []string
	block []*directive
}

// parseNginx parses nginx configuration syntax: directives ending in ";" or
// a block, "#" comments, quoted strings.
func parseNginx(src string) ([]*directive, error) {
	toks, err := tokenize(src, true)
	if err != nil {
		return nil, err
	}
	var parse func(depth int) ([]*directive, error)
	parse = func(depth int) ([]*directive, error) {
		var out []*directive
		var cur *directive
		for len(toks) > 0 {
			t := toks[0]
			toks = toks[1:]
			switch {
			case t == ";" && cur != nil:
				out, cur = append(out, cur), nil
			case t == "{" && cur != nil:
				b, err := parse(depth + 1)
				if err != nil {
					return nil, err
				}
				cur.block = b
				out, cur = append(out, cur), nil
			case t == "}" && cur == nil && depth > 0:
				return out, nil
			case t == ";" || t == "{" || t == "}":
				return nil, fmt.Errorf("unexpected %q", t)
			case cur == nil:
				cur = &directive{name: t}
			default:
				cur.args = append(cur.args, t)
			}
		}
		if cur != nil || depth > 0 {
			return nil, errors.New("unexpected end of file")
		}
		return out, nil
	}
	return parse(0)
}

// tokenize splits configuration text into words, quoted strings (quotes
// removed) and, with punct, the characters ; { }. Comments start with #.
func tokenize(src string, punct bool) ([]string, error) {
	var toks []string
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case punct && (c == ';' || c == '{' || c == '}'):
			toks = append(toks, string(c))
			i++
		case c == '"' || c == '\'' || c == '`':
			j := strings.IndexByte(src[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated string at offset %d", i)
			}
			toks = append(toks, src[i+1:i+1+j])
			i += j + 2
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n;{}\"'", rune(src[j])) {
				j++
			}
			if j == i {
				j++ // a lone brace without punct
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	return toks, nil
}

func find(ds []*directive, name string) []*directive {
	var out []*directive
	for _, d := range ds {
		if d.name == name {
			out = append(out, d)
		}
	}
	return out
}

// headerSet returns the value a block's proxy_set_header gives name (ok
// false when it does not set it).
func headerSet(block []*directive, name string) (string, bool) {
	for _, d := range find(block, "proxy_set_header") {
		if len(d.args) == 2 && strings.EqualFold(d.args[0], name) {
			return d.args[1], true
		}
	}
	return "", false
}

// locate picks the location nginx would choose for uri: an exact match,
// else the longest prefix unless a regular expression matches first.
func locate(locs []*directive, uri string) *directive {
	var best *directive
	bestLen := -1
	for _, l := range locs {
		switch {
		case len(l.args) == 2 && l.args[0] == "=" && l.args[1] == uri:
			return l
		case len(l.args) == 1 && strings.HasPrefix(uri, l.args[0]) && len(l.args[0]) > bestLen:
			best, bestLen = l, len(l.args[0])
		}
	}
	for _, l := range locs {
		if len(l.args) == 2 && (l.args[0] == "~" || l.args[0] == "~*") {
			expr := l.args[1]
			if l.args[0] == "~*" {
				expr = "(?i)" + expr
			}
			if re, err := regexp.Compile(expr); err == nil && re.MatchString(uri) {
				return l
			}
		}
	}
	return best
}

func checkNginx(root string) []string {
	var p problems
	file := filepath.Join(root, "examples", "nginx", "mcp-authz.conf")
	b, err := os.ReadFile(file)
	if err != nil {
		p.add("examples/nginx: %v", err)
		return p
	}
	top, err := parseNginx(string(b))
	if err != nil {
		p.add("examples/nginx/mcp-authz.conf: %v", err)
		return p
	}
	upstreams := map[string]bool{}
	for _, u := range find(top, "upstream") {
		upstreams[strings.Join(u.args, " ")] = true
	}
	servers := find(top, "server")
	if len(servers) != 1 {
		p.add("nginx: %d server blocks, want 1", len(servers))
		return p
	}
	locs := find(servers[0].block, "location")
	named := map[string]*directive{}
	for _, l := range locs {
		if len(l.args) == 1 && strings.HasPrefix(l.args[0], "@") {
			named[l.args[0]] = l
		}
		for _, pp := range find(l.block, "proxy_pass") {
			u, err := url.Parse(pp.args[0])
			if err != nil || !upstreams[u.Host] {
				p.add("nginx: location %v: proxy_pass %s names no upstream block", l.args, pp.args[0])
			}
		}
	}
	authzUpstream := checkNginxOAuth(locs, &p)
	mcp := locate(locs, "/mcp")
	if mcp == nil || len(find(mcp.block, "auth_request")) != 1 {
		p.add("nginx: /mcp is not behind auth_request")
		return p
	}
	checkNginxMCP(mcp, &p)
	check := locate(locs, find(mcp.block, "auth_request")[0].args[0])
	if check == nil {
		p.add("nginx: the auth_request location does not exist")
		return p
	}
	checkNginxCheck(check, authzUpstream, &p)
	for _, ep := range find(mcp.block, "error_page") {
		if target := ep.args[len(ep.args)-1]; strings.HasPrefix(target, "=") {
			if named[strings.TrimPrefix(target, "=")] == nil {
				p.add("nginx: error_page %v goes to an undefined location", ep.args)
			}
		} else if named[target] == nil && !strings.HasPrefix(target, "/") {
			p.add("nginx: error_page %v goes to an undefined location", ep.args)
		}
	}
	return p
}

// checkNginxOAuth checks that every OAuth path is proxied to one upstream
// without auth_request, and returns that upstream.
func checkNginxOAuth(locs []*directive, p *problems) string {
	upstream := ""
	for _, op := range oauthPaths {
		for _, l := range locs {
			// nginx answers a request for a proxied prefix location's name
			// without its final slash with a 301, which loses a POST body.
			if len(l.args) == 1 && l.args[0] == op+"/" && len(find(l.block, "proxy_pass")) > 0 {
				p.add("nginx: location %s makes nginx answer %s with a redirect", l.args[0], op)
			}
		}
		l := locate(locs, op)
		if l == nil || len(find(l.block, "proxy_pass")) != 1 || len(find(l.block, "auth_request")) > 0 {
			p.add("nginx: %s is not proxied to mcp-authz without auth_request", op)
			continue
		}
		u, _ := url.Parse(find(l.block, "proxy_pass")[0].args[0])
		if upstream != "" && u.Host != upstream {
			p.add("nginx: %s goes to %s, other OAuth paths to %s", op, u.Host, upstream)
		}
		upstream = u.Host
	}
	return upstream
}

func checkNginxMCP(mcp *directive, p *problems) {
	vars := map[string]string{}
	for _, s := range find(mcp.block, "auth_request_set") {
		if len(s.args) == 2 {
			vars[s.args[0]] = s.args[1]
		}
	}
	for _, h := range identityHeaders {
		v, ok := headerSet(mcp.block, h)
		want := "$upstream_http_" + strings.ReplaceAll(strings.ToLower(h), "-", "_")
		if !ok || vars[v] != want {
			p.add("nginx: /mcp does not set %s from the check's answer (%s)", h, want)
		}
	}
	if v, ok := headerSet(mcp.block, "Authorization"); !ok || v != "" {
		p.add(`nginx: /mcp must remove Authorization (proxy_set_header Authorization "")`)
	}
}

func checkNginxCheck(check *directive, authzUpstream string, p *problems) {
	if len(find(check.block, "internal")) == 0 {
		p.add("nginx: the check location must be internal")
	}
	pp := find(check.block, "proxy_pass")
	if len(pp) != 1 {
		p.add("nginx: the check location has no proxy_pass")
		return
	}
	u, err := url.Parse(pp[0].args[0])
	if err != nil || u.Host != authzUpstream || u.Path != envoy.NginxCheckPath {
		p.add("nginx: the check must go to %s%s, not %s", authzUpstream, envoy.NginxCheckPath,
			pp[0].args[0])
	}
	want := map[string]string{
		"X-Original-URI": "$request_uri", "X-Original-Method": "$request_method",
		"X-Original-Host": "$http_host", "X-Forwarded-Proto": "$scheme",
		// Client copies of the names Caddy and Traefik use are cleared, so
		// no check can be shown them.
		"X-Forwarded-Uri": "", "X-Forwarded-Method": "", "X-Forwarded-Host": "",
	}
	for h, v := range want {
		if got, ok := headerSet(check.block, h); !ok || got != v {
			p.add("nginx: the check location must set %s to %q (got %q)", h, v, got)
		}
	}
	if d := find(check.block, "proxy_pass_request_body"); len(d) != 1 || d[0].args[0] != "off" {
		p.add("nginx: the check location must not pass the body (proxy_pass_request_body off)")
	}
}

// --- Caddy -------------------------------------------------------------------

// caddyBlock is a Caddyfile line with the block it opens.
type caddyBlock struct {
	args  []string
	block []*caddyBlock
}

// parseCaddyfile parses Caddyfile syntax line by line: a line ending in "{"
// opens a block, a line "}" closes it.
func parseCaddyfile(src string) ([]*caddyBlock, error) {
	root := &caddyBlock{}
	stack := []*caddyBlock{root}
	for n, line := range strings.Split(src, "\n") {
		toks, err := tokenize(line, false)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		top := stack[len(stack)-1]
		switch {
		case len(toks) == 0:
		case len(toks) == 1 && toks[0] == "}":
			if len(stack) == 1 {
				return nil, fmt.Errorf("line %d: unbalanced }", n+1)
			}
			stack = stack[:len(stack)-1]
		case toks[len(toks)-1] == "{":
			b := &caddyBlock{args: toks[:len(toks)-1]}
			top.block = append(top.block, b)
			stack = append(stack, b)
		default:
			top.block = append(top.block, &caddyBlock{args: toks})
		}
	}
	if len(stack) > 1 {
		return nil, errors.New("unclosed block")
	}
	return root.block, nil
}

// walkCaddy calls fn for every line, depth first, with its parents.
func walkCaddy(bs, parents []*caddyBlock, fn func(b *caddyBlock, parents []*caddyBlock)) {
	for _, b := range bs {
		fn(b, parents)
		walkCaddy(b.block, append(slices.Clone(parents), b), fn)
	}
}

func checkCaddy(root string) []string {
	var p problems
	b, err := os.ReadFile(filepath.Join(root, "examples", "caddy", "Caddyfile"))
	if err != nil {
		p.add("examples/caddy: %v", err)
		return p
	}
	top, err := parseCaddyfile(string(b))
	if err != nil {
		p.add("examples/caddy/Caddyfile: %v", err)
		return p
	}
	var forward, oauthProxy *caddyBlock
	var oauthMatcher []string
	stripped := map[string]bool{}
	walkCaddy(top, nil, func(b *caddyBlock, parents []*caddyBlock) {
		switch {
		case len(b.args) == 0: // the global options block
		case b.args[0] == "forward_auth":
			forward = b
		case b.args[0] == "@oauth" && len(b.args) > 2 && b.args[1] == "path":
			oauthMatcher = b.args[2:]
		case b.args[0] == "request_header" && len(b.args) == 2:
			stripped[strings.ToLower(strings.TrimPrefix(b.args[1], "-"))] = true
		case b.args[0] == "reverse_proxy" && len(parents) > 0 &&
			slices.Equal(parents[len(parents)-1].args, []string{"handle", "@oauth"}):
			oauthProxy = b
		}
	})
	for _, op := range oauthPaths {
		if !slices.ContainsFunc(oauthMatcher, func(m string) bool {
			prefix, wild := strings.CutSuffix(m, "*")
			return m == op || (wild && strings.HasPrefix(op, prefix))
		}) {
			p.add("caddy: the @oauth matcher does not cover %s", op)
		}
	}
	if forward == nil || oauthProxy == nil {
		p.add("caddy: no forward_auth, or no reverse_proxy for @oauth")
		return p
	}
	if len(forward.args) < 2 || len(oauthProxy.args) < 2 || forward.args[1] != oauthProxy.args[1] {
		p.add("caddy: forward_auth %v and the OAuth reverse_proxy %v name different upstreams",
			forward.args, oauthProxy.args)
	}
	sub := map[string][]string{}
	var headerUp []string
	for _, d := range forward.block {
		sub[d.args[0]] = d.args[1:]
		if d.args[0] == "header_up" {
			headerUp = append(headerUp, d.args[1:]...)
		}
	}
	if u := sub["uri"]; len(u) != 1 || u[0] != envoy.ForwardAuthCheckPath {
		p.add("caddy: forward_auth uri %v is not %s", u, envoy.ForwardAuthCheckPath)
	}
	for _, h := range identityHeaders {
		if !slices.Contains(sub["copy_headers"], h) {
			p.add("caddy: forward_auth does not copy %s", h)
		}
		if !stripped[strings.ToLower(h)] {
			p.add("caddy: the client's %s is not removed before forward_auth", h)
		}
	}
	for _, h := range []string{"X-Original-Method", "X-Original-Uri", "X-Original-Host"} {
		if !slices.Contains(headerUp, "-"+h) {
			p.add("caddy: forward_auth must remove the client's %s (header_up -%s)", h, h)
		}
	}
	if !stripped["authorization"] {
		p.add("caddy: Authorization is not removed before the MCP server")
	}
	return p
}

// --- Traefik ---------------------------------------------------------------

func checkTraefik(root string) []string {
	var p problems
	dir := filepath.Join(root, "examples", "traefik")
	static, err := readYAML(filepath.Join(dir, "traefik.yml"))
	if err != nil || len(static) != 1 {
		p.add("examples/traefik/traefik.yml: %v", err)
		return p
	}
	dynFile := str(static[0], "providers", "file", "filename")
	dyn, err := readYAML(filepath.Join(dir, dynFile))
	if err != nil || len(dyn) != 1 {
		p.add("examples/traefik: providers.file.filename %q: %v", dynFile, err)
		return p
	}
	entryPoints := mapping(static[0], "entryPoints")
	h := get(dyn[0], "http")
	services, middlewares := mapping(h, "services"), mapping(h, "middlewares")
	routed := map[string]bool{}
	for name, r := range mapping(h, "routers") {
		for _, ep := range strs(r, "entryPoints") {
			if entryPoints[ep] == nil {
				p.add("traefik: router %s: entry point %q is not defined", name, ep)
			}
		}
		if services[str(r, "service")] == nil {
			p.add("traefik: router %s: service %q is not defined", name, str(r, "service"))
		}
		for _, op := range checkTraefikRouter(name, r, middlewares, services, &p) {
			routed[op] = true
		}
	}
	for _, op := range oauthPaths {
		if !routed[op] {
			p.add("traefik: no router sends %s to mcp-authz unchecked", op)
		}
	}
	return p
}

// traefikChain applies a router's middlewares, in order, to the client's
// headers up to forwardAuth (headers middlewares set, or with an empty value
// remove, request headers) and returns the forwardAuth options and the
// client headers it passes to the check (only authRequestHeaders when set);
// Traefik adds its X-Forwarded-* headers to these. stripsAuth reports a
// headers middleware after forwardAuth that removes Authorization; unknown
// lists middlewares that are not defined.
func traefikChain(r node, middlewares map[string]any, client http.Header) (forward node,
	sent http.Header, stripsAuth bool, unknown []string) {
	hdr := client.Clone()
	for _, m := range strs(r, "middlewares") {
		mw := middlewares[m]
		if mw == nil {
			unknown = append(unknown, m)
			continue
		}
		if fa := get(mw, "forwardAuth"); fa != nil && forward == nil {
			forward, sent = fa, hdr.Clone()
			if allowed := strs(fa, "authRequestHeaders"); len(allowed) > 0 {
				sent = http.Header{}
				for _, name := range allowed {
					if v := hdr.Values(name); len(v) > 0 {
						sent[http.CanonicalHeaderKey(name)] = v
					}
				}
			}
			continue
		}
		for k, v := range mapping(mw, "headers", "customRequestHeaders") {
			switch {
			case v == "" && forward != nil && strings.EqualFold(k, "Authorization"):
				stripsAuth = true
			case v == "":
				hdr.Del(k)
			default:
				hdr.Set(k, fmt.Sprint(v))
			}
		}
	}
	return forward, sent, stripsAuth, unknown
}

var traefikPathRE = regexp.MustCompile("(Path|PathPrefix)\\(`([^`]*)`\\)")

// traefikRuleMatches reports whether one of the Path or PathPrefix matchers
// of a router rule matches p (the rule's other matchers are not read).
func traefikRuleMatches(rule, p string) bool {
	for _, m := range traefikPathRE.FindAllStringSubmatch(rule, -1) {
		if (m[1] == "Path" && m[2] == p) || (m[1] == "PathPrefix" && strings.HasPrefix(p, m[2])) {
			return true
		}
	}
	return false
}

// checkTraefikRouter checks one router and returns the OAuth paths it sends
// to mcp-authz unchecked.
func checkTraefikRouter(name string, r node, middlewares, services map[string]any,
	p *problems) []string {
	rule := str(r, "rule")
	probe := http.Header{"Authorization": {"Bearer t"}, "Mcp-Method": {"tools/call"},
		"Mcp-Name": {"add"}, "X-Original-Method": {"GET"}, "X-Original-Uri": {"/x"},
		"X-Original-Host": {"evil.invalid"}}
	forward, sent, strips, unknown := traefikChain(r, middlewares, probe)
	for _, m := range unknown {
		p.add("traefik: router %s: middleware %q is not defined", name, m)
	}
	isMCP := traefikRuleMatches(rule, "/mcp")
	var oauth []string
	for _, op := range oauthPaths {
		if traefikRuleMatches(rule, op) {
			if forward != nil || isMCP || str(r, "service") != "mcp-authz" {
				p.add("traefik: router %s does not send OAuth path %s to mcp-authz unchecked",
					name, op)
				continue
			}
			oauth = append(oauth, op)
		}
	}
	if !isMCP {
		return oauth
	}
	if forward == nil || !strips {
		p.add("traefik: router %s: /mcp needs a forwardAuth middleware and one that removes "+
			"Authorization", name)
		return oauth
	}
	addr, err := url.Parse(str(forward, "address"))
	if err != nil || addr.Path != envoy.ForwardAuthCheckPath || addr.RawQuery != "" {
		p.add("traefik: forwardAuth address %q does not end in %s", str(forward, "address"),
			envoy.ForwardAuthCheckPath)
	} else if !slices.ContainsFunc(list(services["mcp-authz"], "loadBalancer", "servers"),
		func(s any) bool { return strings.TrimSuffix(str(s, "url"), "/") == "http://"+addr.Host }) {
		p.add("traefik: forwardAuth goes to %s, not to the mcp-authz service", addr.Host)
	}
	if str(forward, "trustForwardHeader") != "false" {
		p.add("traefik: forwardAuth must set trustForwardHeader: false")
	}
	for _, hdr := range identityHeaders {
		if !slices.Contains(strs(forward, "authResponseHeaders"), hdr) {
			p.add("traefik: forwardAuth authResponseHeaders lacks %s", hdr)
		}
	}
	for _, h := range []string{"Authorization", "Mcp-Method", "Mcp-Name"} {
		if sent.Get(h) == "" {
			p.add("traefik: router %s: the client's %s does not reach the check", name, h)
		}
	}
	for _, h := range []string{"X-Original-Method", "X-Original-Uri", "X-Original-Host"} {
		if sent.Get(h) != "" {
			p.add("traefik: router %s: the client's %s reaches the check; remove it before "+
				"forwardAuth", name, h)
		}
	}
	return oauth
}
