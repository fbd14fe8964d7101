package examples_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// --- docker-compose.yml --------------------------------------------------

// composeService is what the checks need of one compose service.
type composeService struct {
	name    string
	n       node
	ports   map[int]int // host port -> container port
	exposed map[int]bool
	env     map[string]string
}

func checkCompose(root string) []string {
	var p problems
	docs, err := readYAML(filepath.Join(root, "docker-compose.yml"))
	if err != nil || len(docs) != 1 {
		p.add("docker-compose.yml: %v (documents: %d)", err, len(docs))
		return p
	}
	doc := docs[0]
	services := map[string]*composeService{}
	for name, n := range mapping(doc, "services") {
		services[name] = parseComposeService(name, n, &p)
	}
	declared := mapping(doc, "volumes")
	used := map[string]bool{}
	for _, s := range services {
		checkComposeService(root, s, services, declared, used, &p)
	}
	for v := range declared {
		if !used[v] {
			p.add("docker-compose.yml: volume %q is declared but no service mounts it", v)
		}
	}
	checkComposeEnvoy(root, services, &p)
	return p
}

func parseComposeService(name string, n node, p *problems) *composeService {
	s := &composeService{name: name, n: n, ports: map[int]int{}, exposed: map[int]bool{},
		env: map[string]string{}}
	for _, port := range list(n, "ports") {
		if m, ok := port.(map[string]any); ok {
			s.ports[intOf(m["published"])] = intOf(m["target"])
			continue
		}
		parts := strings.Split(fmt.Sprint(port), ":")
		if len(parts) < 2 {
			s.exposed[intOf(parts[0])] = true
			continue
		}
		s.ports[intOf(parts[len(parts)-2])] = intOf(strings.Split(parts[len(parts)-1], "/")[0])
	}
	for hp, cp := range s.ports {
		if hp == 0 || cp == 0 {
			p.add("docker-compose.yml: service %s: unreadable port mapping", name)
		}
		s.exposed[cp] = true
	}
	for _, e := range list(n, "expose") {
		s.exposed[intOf(fmt.Sprint(e))] = true
	}
	switch env := get(n, "environment").(type) {
	case map[string]any:
		for k, v := range env {
			s.env[k] = fmt.Sprint(v)
		}
	case []any:
		for _, e := range env {
			k, v, _ := strings.Cut(fmt.Sprint(e), "=")
			s.env[k] = v
		}
	}
	return s
}

func checkComposeService(root string, s *composeService, services map[string]*composeService,
	declared map[string]any, used map[string]bool, p *problems) {
	for _, v := range list(s.n, "volumes") {
		src, dst := "", ""
		if m, ok := v.(map[string]any); ok {
			src, dst = str(m, "source"), str(m, "target")
		} else {
			parts := strings.Split(fmt.Sprint(v), ":")
			src, dst = parts[0], parts[len(parts)-1]
			if len(parts) == 3 {
				dst = parts[1]
			}
		}
		switch {
		case strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/"):
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				p.add("docker-compose.yml: service %s mounts %s, which does not exist", s.name, src)
			}
		case src != "":
			used[src] = true
			if _, ok := declared[src]; !ok {
				p.add("docker-compose.yml: service %s: volume %q is not declared", s.name, src)
			}
			if dir := s.env["MCP_AUTHZ_DATA_DIR"]; dir != "" && dir != dst {
				p.add("docker-compose.yml: service %s mounts %s at %s, but MCP_AUTHZ_DATA_DIR is %s",
					s.name, src, dst, dir)
			}
		}
	}
	if b := get(s.n, "build"); b != nil {
		checkComposeBuild(root, s.name, b, p)
	}
	var deps []string
	for d := range mapping(s.n, "depends_on") {
		deps = append(deps, d)
	}
	deps = append(deps, strs(s.n, "depends_on")...)
	for _, d := range deps {
		if services[d] == nil {
			p.add("docker-compose.yml: service %s depends on unknown service %s", s.name, d)
		}
	}
}

var stageRE = regexp.MustCompile(`(?im)^FROM\s+\S+\s+AS\s+(\S+)`)

func checkComposeBuild(root, service string, b node, p *problems) {
	ctx, dockerfile, target := ".", "Dockerfile", ""
	if s, ok := b.(string); ok {
		ctx = s
	} else {
		ctx = cmpOr(str(b, "context"), ".")
		dockerfile = cmpOr(str(b, "dockerfile"), dockerfile)
		target = str(b, "target")
	}
	df, err := os.ReadFile(filepath.Join(root, ctx, dockerfile))
	if err != nil {
		p.add("docker-compose.yml: service %s builds %s/%s, which does not exist: %v",
			service, ctx, dockerfile, err)
		return
	}
	if target == "" {
		return
	}
	for _, m := range stageRE.FindAllStringSubmatch(string(df), -1) {
		if m[1] == target {
			return
		}
	}
	p.add("docker-compose.yml: service %s: %s has no stage %q", service, dockerfile, target)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkComposeEnvoy follows the Envoy service's configuration: its listener
// is published on host port 8080 and its clusters name services and ports
// of this file; the issuer is that origin.
func checkComposeEnvoy(root string, services map[string]*composeService, p *problems) {
	envoy := services["envoy"]
	if envoy == nil {
		p.add("docker-compose.yml: no envoy service")
		return
	}
	cmd := strs(envoy.n, "command")
	cfg := ""
	if i := slices.Index(cmd, "-c"); i >= 0 && i+1 < len(cmd) {
		cfg = cmd[i+1]
	}
	file := ""
	for _, v := range list(envoy.n, "volumes") {
		parts := strings.Split(fmt.Sprint(v), ":")
		if len(parts) >= 2 && parts[1] == cfg {
			file = parts[0]
		}
	}
	if file == "" {
		p.add("docker-compose.yml: envoy's -c %q is not a mounted file", cfg)
		return
	}
	listeners, clusters, err := envoyAddrs(filepath.Join(root, file))
	if err != nil {
		p.add("docker-compose.yml: envoy config: %v", err)
		return
	}
	if cp, ok := envoy.ports[8080]; !ok || !slices.Contains(listeners, cp) {
		p.add("docker-compose.yml: envoy must publish host port 8080 to one of its listener "+
			"ports %v (README: localhost:8080/mcp); ports %v", listeners, envoy.ports)
	}
	for name, eps := range clusters {
		for _, ep := range eps {
			s := services[ep.host]
			if s == nil || !s.exposed[ep.port] {
				p.add("%s: cluster %s points at %s, which no compose service exposes",
					file, name, ep)
			}
		}
	}
	authz := services["mcp-authz"]
	if authz == nil {
		p.add("docker-compose.yml: no mcp-authz service")
		return
	}
	if iss := authz.env["MCP_AUTHZ_ISSUER"]; iss != "http://localhost:8080" {
		p.add("docker-compose.yml: MCP_AUTHZ_ISSUER is %q, want the published origin "+
			"http://localhost:8080", iss)
	}
	if res := authz.env["MCP_AUTHZ_RESOURCES"]; res != "http://localhost:8080/mcp" {
		p.add("docker-compose.yml: MCP_AUTHZ_RESOURCES is %q, want http://localhost:8080/mcp", res)
	}
	for _, k := range []string{"MCP_AUTHZ_HTTP_ADDR", "MCP_AUTHZ_GRPC_ADDR"} {
		if port := portOf(authz.env[k]); port == 0 || !authz.exposed[port] {
			p.add("docker-compose.yml: mcp-authz %s=%q is not an exposed port", k, authz.env[k])
		}
	}
}
