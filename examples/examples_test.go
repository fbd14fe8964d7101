// Package examples_test checks that the deployment examples hang together
// without running them: every YAML file under examples/ parses; the
// references between Kubernetes and Istio objects, kustomize generators,
// docker-compose.yml, the Dockerfile and the Envoy configurations resolve;
// and the nginx, Caddy and Traefik configurations ask mcp-authz's HTTP check
// with the headers it reads. scripts/e2e-proxies.sh runs the nginx and Caddy
// configurations for real.
//
// Each check returns the problems it found, so that TestBrokenCopies can
// prove, on mutated copies of the files, that a broken reference is caught.
package examples_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// oauthPaths must reach mcp-authz without a check: clients call them before
// they have a token, and a browser signs in on the consent pages (/consents,
// /consents/revoke) with a password.
var oauthPaths = []string{
	"/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp",
	"/authorize", "/token", "/register", "/register/client-1", "/revoke", "/introspect",
	"/consents", "/consents/revoke",
}

// identityHeaders are set by the check on an allowed request.
var identityHeaders = []string{"X-Mcp-Client-Id", "X-Mcp-Subject", "X-Mcp-Scope"}

// exampleDirs are the deployment examples; each must have a README.md.
var exampleDirs = []string{"nginx", "caddy", "traefik", "kubernetes", "istio", "demo-mcp-server"}

// checks are run against the repository and against broken copies.
var checks = []struct {
	name string
	fn   func(root string) []string
}{
	{"yaml", checkYAMLFiles},
	{"readme", checkREADMEs},
	{"compose", checkCompose},
	{"kubernetes", checkKubernetes},
	{"istio", checkIstio},
	{"nginx", checkNginx},
	{"caddy", checkCaddy},
	{"traefik", checkTraefik},
}

// TestExamples runs every check on the repository.
func TestExamples(t *testing.T) {
	t.Parallel()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, p := range c.fn("..") {
				t.Error(p)
			}
		})
	}
}

// TestBrokenCopies breaks one reference at a time in a copy of the files and
// expects the checks to name it.
func TestBrokenCopies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, old, new, want string
	}{
		{"compose mount of a missing file", "docker-compose.yml",
			"./envoy/config/front-proxy.yaml:", "./envoy/config/missing.yaml:", "does not exist"},
		{"compose undeclared volume", "docker-compose.yml",
			"mcp-authz-data:/data", "other-data:/data", `volume "other-data" is not declared`},
		{"compose missing build target", "docker-compose.yml",
			"target: demo-mcp-server", "target: no-such-stage", `no stage "no-such-stage"`},
		{"compose renamed Dockerfile stage", "Dockerfile",
			"AS demo-mcp-server", "AS demo-server", `no stage "demo-mcp-server"`},
		{"compose port not published", "docker-compose.yml",
			`"8080:8080"`, `"8081:8080"`, "host port 8080"},
		{"compose cluster port not exposed", "envoy/config/front-proxy.yaml",
			"{address: mcp-server, port_value: 8000}", "{address: mcp-server, port_value: 8001}",
			"mcp-server:8001"},
		{"kubernetes missing claim", "examples/kubernetes/deployment.yaml",
			"claimName: mcp-authz-data", "claimName: mcp-data", `PersistentVolumeClaim "mcp-data"`},
		{"kubernetes missing config map", "examples/kubernetes/deployment.yaml",
			"name: mcp-gateway-envoy", "name: envoy-config", `ConfigMap "envoy-config"`},
		{"kubernetes missing generator file", "examples/kubernetes/kustomization.yaml",
			"../../envoy/config/sidecar.yaml", "../../envoy/config/side.yaml", "does not exist"},
		{"kubernetes missing resource", "examples/kubernetes/kustomization.yaml",
			"- pvc.yaml", "- pvcs.yaml", "does not exist"},
		{"kubernetes service target port", "examples/kubernetes/service.yaml",
			"targetPort: http", "targetPort: web", `targetPort "web"`},
		{"kubernetes sidecar cluster unserved", "examples/kubernetes/deployment.yaml",
			"value: 127.0.0.1:9001", "value: 127.0.0.1:9011", "127.0.0.1:9001"},
		{"kubernetes envoy config path", "examples/kubernetes/deployment.yaml",
			`"-c", "/etc/envoy/envoy.yaml"`, `"-c", "/etc/envoy/front.yaml"`, "/etc/envoy/front.yaml"},
		{"istio unknown provider", "examples/istio/authorization-policy.yaml",
			"  provider:\n    name: mcp-authz", "  provider:\n    name: ext-authz",
			`provider "ext-authz"`},
		{"istio provider port", "examples/istio/mesh-config.yaml",
			"port: 9001", "port: 9002", "port 9002"},
		{"istio policy selects nothing", "examples/istio/authorization-policy.yaml",
			"app: mcp-server", "app: mcp", "selects no workload"},
		{"istio route to a missing service", "examples/istio/gateway.yaml",
			"host: mcp-server.mcp.svc.cluster.local", "host: mcp.mcp.svc.cluster.local",
			"mcp.mcp.svc.cluster.local"},
		{"istio oauth path checked", "examples/istio/authorization-policy.yaml",
			`paths: ["/mcp", "/mcp/*"]`, `paths: ["/*"]`, "/mcp"},
		{"istio consent withdrawal not routed", "examples/istio/gateway.yaml",
			"        - uri: {prefix: /consents/}\n", "", "/consents/revoke is not routed"},
		{"istio consent pages checked", "examples/istio/authorization-policy.yaml",
			"              - /consents\n", "", "notPaths do not exclude OAuth path /consents"},
		{"yaml syntax", "examples/istio/gateway.yaml",
			"  gateways: [mcp]", "  gateways: [mcp", "parsing"},
		{"nginx original uri header", "examples/nginx/mcp-authz.conf",
			"X-Original-URI $request_uri", "X-Original-Path $request_uri", "X-Original-URI"},
		{"nginx check path", "examples/nginx/mcp-authz.conf",
			"http://mcp_authz/check/nginx", "http://mcp_authz/check/forward", "/check/nginx"},
		{"nginx check under envoy's prefix", "examples/nginx/mcp-authz.conf",
			"http://mcp_authz/check/nginx", "http://mcp_authz/ext_authz/nginx", "/check/nginx"},
		{"nginx proto header", "examples/nginx/mcp-authz.conf",
			"X-Forwarded-Proto $scheme;\n        proxy_set_header X-Forwarded-Method",
			"X-Forwarded-Method", "X-Forwarded-Proto"},
		{"nginx forwarded uri passed", "examples/nginx/mcp-authz.conf",
			"proxy_set_header X-Forwarded-Uri \"\";", "", "X-Forwarded-Uri"},
		{"nginx authorization forwarded", "examples/nginx/mcp-authz.conf",
			`proxy_set_header Authorization "";`, "", "Authorization"},
		{"nginx oauth path checked", "examples/nginx/mcp-authz.conf",
			"|revoke|introspect|", "|revoke|", "/introspect"},
		{"nginx consent withdrawal checked", "examples/nginx/mcp-authz.conf",
			"|consents|consents/revoke)", "|consents)", "/consents/revoke is not proxied"},
		{"nginx redirect of /register", "examples/nginx/mcp-authz.conf",
			"location ~ ^/register/[^/]+$ {", "location /register/ {", "answer /register with a redirect"},
		{"nginx unknown upstream", "examples/nginx/mcp-authz.conf",
			"proxy_pass http://mcp_server;", "proxy_pass http://mcp_servers;", "mcp_servers"},
		{"caddy check path", "examples/caddy/Caddyfile",
			"uri /check/forward", "uri /check/nginx", "/check/forward"},
		{"caddy check under envoy's prefix", "examples/caddy/Caddyfile",
			"uri /check/forward", "uri /ext_authz/caddy", "/check/forward"},
		{"caddy consent pages checked", "examples/caddy/Caddyfile",
			" /consents /consents/*\n", "\n", "does not cover /consents"},
		{"caddy identity header not copied", "examples/caddy/Caddyfile",
			"copy_headers X-Mcp-Client-Id X-Mcp-Subject", "copy_headers X-Mcp-Subject",
			"X-Mcp-Client-Id"},
		{"caddy original headers passed", "examples/caddy/Caddyfile",
			"header_up -X-Original-Uri", "header_up -X-Something", "X-Original-Uri"},
		{"traefik check path", "examples/traefik/dynamic.yml",
			"127.0.0.1:9000/check/forward", "127.0.0.1:9000/check/nginx", "/check/forward"},
		{"traefik check under envoy's prefix", "examples/traefik/dynamic.yml",
			"127.0.0.1:9000/check/forward", "127.0.0.1:9000/ext_authz/traefik", "/check/forward"},
		{"traefik consent withdrawal checked", "examples/traefik/dynamic.yml",
			" || PathPrefix(`/consents/`)", "", "sends /consents/revoke"},
		{"traefik identity header not copied", "examples/traefik/dynamic.yml",
			"          - X-Mcp-Scope\n", "", "X-Mcp-Scope"},
		{"traefik unknown middleware", "examples/traefik/dynamic.yml",
			"mcp-authz-check, mcp-strip-authorization]", "mcp-authz-check, strip]",
			`middleware "strip"`},
		{"traefik original uri passed", "examples/traefik/dynamic.yml",
			"          X-Original-Uri: \"\"\n", "", "X-Original-Uri reaches the check"},
		{"traefik check before cleaning", "examples/traefik/dynamic.yml",
			"[mcp-authz-clean, mcp-authz-check,", "[mcp-authz-check, mcp-authz-clean,",
			"reaches the check"},
		{"readme missing", "examples/caddy/README.md", "", "", "README.md"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := copyRepo(t)
			breakFile(t, filepath.Join(root, tt.file), tt.old, tt.new)
			var all []string
			for _, c := range checks {
				all = append(all, c.fn(root)...)
			}
			t.Logf("problems found:\n%s", strings.Join(all, "\n"))
			if !slices.ContainsFunc(all, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("no problem mentions %q; got:\n%s", tt.want, strings.Join(all, "\n"))
			}
		})
	}
}

// copyRepo copies the files the checks read into a temporary directory.
func copyRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range []string{"docker-compose.yml", "Dockerfile", "envoy/config", "examples"} {
		src := filepath.Join("..", p)
		err := filepath.WalkDir(src, func(s string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel("..", s)
			dst := filepath.Join(root, rel)
			if d.IsDir() {
				return os.MkdirAll(dst, 0o755)
			}
			if strings.HasSuffix(s, ".go") {
				return nil
			}
			b, err := os.ReadFile(s)
			if err != nil {
				return err
			}
			return os.WriteFile(dst, b, 0o644)
		})
		if err != nil {
			t.Fatalf("copying %s: %v", p, err)
		}
	}
	return root
}

// breakFile replaces the one occurrence of old with new; with old empty it
// removes the file.
func breakFile(t *testing.T, file, old, new string) {
	t.Helper()
	if old == "" {
		if err := os.Remove(file); err != nil {
			t.Fatal(err)
		}
		return
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), old); n != 1 {
		t.Fatalf("%s contains %q %d times, want once: update this test", file, old, n)
	}
	b = []byte(strings.Replace(string(b), old, new, 1))
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// problems collects what a check found.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// --- YAML ---------------------------------------------------------------

// node is a decoded YAML value: map[string]any, []any or a scalar.
type node = any

// readYAML decodes every document of a YAML file.
func readYAML(file string) ([]node, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []node
	for {
		var doc node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", file, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// get walks maps and lists: get(n, "spec", "ports", 0, "port").
func get(n node, keys ...any) node {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := n.(map[string]any)
			if !ok {
				return nil
			}
			n = m[k]
		case int:
			l, ok := n.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			n = l[k]
		}
	}
	return n
}

func str(n node, keys ...any) string {
	switch v := get(n, keys...).(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

func list(n node, keys ...any) []any {
	l, _ := get(n, keys...).([]any)
	return l
}

func mapping(n node, keys ...any) map[string]any {
	m, _ := get(n, keys...).(map[string]any)
	return m
}

func strs(n node, keys ...any) []string {
	var out []string
	for _, v := range list(n, keys...) {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// checkYAMLFiles parses every YAML file under examples/.
func checkYAMLFiles(root string) []string {
	var p problems
	err := filepath.WalkDir(filepath.Join(root, "examples"),
		func(file string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			if ext := filepath.Ext(file); ext != ".yaml" && ext != ".yml" {
				return nil
			}
			docs, err := readYAML(file)
			if err != nil {
				p.add("%v", err)
			} else if len(docs) == 0 {
				p.add("%s: no YAML document", file)
			}
			return nil
		})
	if err != nil {
		p.add("walking examples: %v", err)
	}
	return p
}

func checkREADMEs(root string) []string {
	var p problems
	for _, d := range exampleDirs {
		f := filepath.Join(root, "examples", d, "README.md")
		if b, err := os.ReadFile(f); err != nil || len(bytes.TrimSpace(b)) == 0 {
			p.add("examples/%s/README.md is missing or empty", d)
		}
	}
	return p
}

// --- Envoy configurations ----------------------------------------------

// hostPort is an address in an Envoy configuration.
type hostPort struct {
	host string
	port int
}

func (h hostPort) String() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// envoyAddrs returns the listener ports and the cluster endpoints (by cluster
// name) of an Envoy bootstrap file.
func envoyAddrs(file string) (listeners []int, clusters map[string][]hostPort, err error) {
	docs, err := readYAML(file)
	if err != nil {
		return nil, nil, err
	}
	if len(docs) != 1 {
		return nil, nil, fmt.Errorf("%s: %d documents, want 1", file, len(docs))
	}
	res := get(docs[0], "static_resources")
	for _, l := range list(res, "listeners") {
		listeners = append(listeners, intOf(get(l, "address", "socket_address", "port_value")))
	}
	clusters = map[string][]hostPort{}
	for _, c := range list(res, "clusters") {
		name := str(c, "name")
		for _, e := range list(c, "load_assignment", "endpoints") {
			for _, lb := range list(e, "lb_endpoints") {
				sa := get(lb, "endpoint", "address", "socket_address")
				clusters[name] = append(clusters[name],
					hostPort{str(sa, "address"), intOf(get(sa, "port_value"))})
			}
		}
	}
	if len(listeners) == 0 || len(clusters) == 0 {
		return nil, nil, fmt.Errorf("%s: no listeners or no clusters found", file)
	}
	return listeners, clusters, nil
}

func intOf(n node) int {
	switch v := n.(type) {
	case int:
		return v
	case string:
		i, _ := strconv.Atoi(v)
		return i
	}
	return 0
}

// portOf returns the port of an address such as ":9000" or "127.0.0.1:9000".
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	return intOf(p)
}
