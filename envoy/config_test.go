package envoy

// The Envoy configuration tests. Envoy itself cannot run here, so every Envoy
// bootstrap in the repository is parsed into Envoy's own protos
// (go-control-plane), validated with the protos' generated rules, including
// every typed_config packed in an Any, and its ext_authz wiring is checked.
//
// Which files are checked: every *.yaml and *.yml under the module root,
// except in directories named testdata, vendor or node_modules and in hidden
// directories (.git). A file is an Envoy bootstrap when a YAML document in it
// is a mapping with a top-level static_resources key; every other file is
// skipped (docker-compose files, Kubernetes manifests, CI workflows). A YAML
// file that does not parse at all is an error, so a broken bootstrap cannot
// be skipped by accident. JSON bootstraps and xDS-only bootstraps
// (dynamic_resources without static_resources) are not covered.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every type a bootstrap in this repository may name in a typed_config.
	// protojson resolves "@type" through the global registry, so a type
	// missing here makes the file fail to parse (add the import).
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/health_check/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// Names the checks rely on.
const (
	extAuthzFilter  = "envoy.filters.http.ext_authz"
	routerFilter    = "envoy.filters.http.router"
	protocolOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// publicPaths must reach mcp-authz's HTTP endpoints without a token; the
// route Envoy picks for each must have ext_authz disabled. /consents and
// /consents/revoke are the user's consent pages: a browser signs in there with
// a password and never holds a bearer token.
var publicPaths = []string{
	"/authorize",
	"/token",
	"/register",
	"/register/3f1c0a",
	"/revoke",
	"/introspect",
	"/consents",
	"/consents/revoke",
	"/.well-known/oauth-authorization-server",
	"/.well-known/openid-configuration",
	"/.well-known/oauth-protected-resource",
	"/.well-known/oauth-protected-resource/mcp",
	"/.well-known/jwks.json",
}

// checkedPaths must be checked: the route Envoy picks for each must run
// ext_authz and must not be a route to the authorization server. /consentsx
// keeps the consent route from being a bare prefix.
var checkedPaths = []string{
	"/mcp", "/mcp/", "/mcp?session=1", "/", "/ext_authz/mcp", "/consentsx",
}

// ownConfigs are the bootstraps this package ships; the walk must find them.
var ownConfigs = []string{"envoy/config/front-proxy.yaml", "envoy/config/sidecar.yaml"}

func TestEnvoyConfigs(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	files, err := findBootstraps(root)
	if err != nil {
		t.Fatalf("finding Envoy bootstraps under %s: %v", root, err)
	}
	var rel []string
	for _, f := range files {
		r, _ := filepath.Rel(root, f.path)
		rel = append(rel, filepath.ToSlash(r))
	}
	for _, own := range ownConfigs {
		if !slices.Contains(rel, own) {
			t.Errorf("bootstrap %s not found by the walk (found %v)", own, rel)
		}
	}

	for i, f := range files {
		t.Run(rel[i], func(t *testing.T) {
			t.Parallel()
			for _, err := range checkBootstrapJSON(f.json) {
				t.Error(err)
			}
		})
	}
}

// moduleRoot returns the directory holding go.mod, found by walking up from
// the test's working directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getting the working directory: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// bootstrapFile is one Envoy bootstrap found on disk, as JSON.
type bootstrapFile struct {
	path string
	json []byte
}

// docSeparator splits a YAML stream into documents.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// findBootstraps walks root for Envoy bootstraps (see the rule at the top of
// this file).
func findBootstraps(root string) ([]bootstrapFile, error) {
	var out []bootstrapFile
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") ||
				name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(name); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, err := bootstrapDocs(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for _, doc := range docs {
			out = append(out, bootstrapFile{path: path, json: doc})
		}
		return nil
	})
	return out, err
}

// bootstrapDocs returns, as JSON, the documents of a YAML stream that are
// Envoy bootstraps: mappings with a top-level static_resources key.
func bootstrapDocs(data []byte) ([][]byte, error) {
	var out [][]byte
	for i, doc := range docSeparator.Split(string(data), -1) {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("parsing YAML document %d: %w", i, err)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(js, &top) != nil {
			continue // a list, a scalar or an empty document
		}
		if _, ok := top["static_resources"]; ok {
			out = append(out, js)
		}
	}
	return out, nil
}

// checkBootstrapJSON parses, validates and checks one bootstrap.
func checkBootstrapJSON(js []byte) []error {
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		return []error{fmt.Errorf("parsing into envoy.config.bootstrap.v3.Bootstrap: %w", err)}
	}
	if err := b.ValidateAll(); err != nil {
		return []error{fmt.Errorf("validating the bootstrap: %w", err)}
	}
	if errs := validateTyped(b.ProtoReflect(), "bootstrap"); len(errs) > 0 {
		return errs
	}
	return checkStructure(&b)
}

// validator is implemented by every go-control-plane message (generated by
// protoc-gen-validate).
type validator interface{ ValidateAll() error }

// validateTyped walks m and, for every google.protobuf.Any in it (listener
// filters, http filters, per-route configs, protocol options, access
// loggers, health check extensions, transport sockets...), unpacks it,
// validates the typed message and walks that too. Validate on the outer
// message stops at the Any.
func validateTyped(m protoreflect.Message, path string) []error {
	var errs []error
	visit := func(msg protoreflect.Message, p string) {
		errs = append(errs, validateMessage(msg, p)...)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String()))
				return true
			})
		case fd.IsList():
			if fd.Message() == nil {
				return true
			}
			for i := range v.List().Len() {
				visit(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		case fd.Message() != nil:
			visit(v.Message(), p)
		}
		return true
	})
	return errs
}

// validateMessage validates msg when it is an Any, then walks it.
func validateMessage(msg protoreflect.Message, path string) []error {
	a, ok := msg.Interface().(*anypb.Any)
	if !ok {
		return validateTyped(msg, path)
	}
	inner, err := a.UnmarshalNew()
	if err != nil {
		return []error{fmt.Errorf("%s: unpacking %s: %w", path, a.GetTypeUrl(), err)}
	}
	name := string(inner.ProtoReflect().Descriptor().FullName())
	if v, ok := inner.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return []error{fmt.Errorf("%s (%s): %w", path, name, err)}
		}
	}
	return validateTyped(inner.ProtoReflect(), path+"<"+name+">")
}

// unpack returns the message in a, which must be of type T.
func unpack[T proto.Message](a *anypb.Any) (T, error) {
	var zero T
	m, err := a.UnmarshalNew()
	if err != nil {
		return zero, fmt.Errorf("unpacking %s: %w", a.GetTypeUrl(), err)
	}
	t, ok := m.(T)
	if !ok {
		return zero, fmt.Errorf("typed config is %s, want %T", a.GetTypeUrl(), zero)
	}
	return t, nil
}

// checkStructure checks the ext_authz wiring of every HTTP connection
// manager in b.
func checkStructure(b *bootstrapv3.Bootstrap) []error {
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}

	var errs []error
	found := 0
	for _, l := range b.GetStaticResources().GetListeners() {
		chains := slices.Clone(l.GetFilterChains())
		if l.GetDefaultFilterChain() != nil {
			chains = append(chains, l.GetDefaultFilterChain())
		}
		for i, fc := range chains {
			for _, f := range fc.GetFilters() {
				if f.GetTypedConfig().MessageIs((*hcmv3.HttpConnectionManager)(nil)) {
					found++
					hcm, err := unpack[*hcmv3.HttpConnectionManager](f.GetTypedConfig())
					if err != nil {
						errs = append(errs, err)
						continue
					}
					where := fmt.Sprintf("listener %q filter chain %d", l.GetName(), i)
					errs = append(errs, checkHCM(where, hcm, clusters)...)
				}
			}
		}
	}
	if found == 0 {
		errs = append(errs, errors.New("no http_connection_manager in any listener"))
	}
	return errs
}

// checkHCM checks one HTTP connection manager: ext_authz first and fail
// closed, the router last, and its routes.
func checkHCM(where string, hcm *hcmv3.HttpConnectionManager,
	clusters map[string]*clusterv3.Cluster) []error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf(where+": "+format, args...)
	}
	filters := hcm.GetHttpFilters()
	if len(filters) == 0 || filters[0].GetName() != extAuthzFilter {
		return []error{fail("first HTTP filter is not %s", extAuthzFilter)}
	}
	if last := filters[len(filters)-1].GetName(); last != routerFilter {
		return []error{fail("last HTTP filter is %q, want %s", last, routerFilter)}
	}
	if filters[0].GetDisabled() {
		return []error{fail("ext_authz is disabled by default")}
	}
	ext, err := unpack[*extauthzv3.ExtAuthz](filters[0].GetTypedConfig())
	if err != nil {
		return []error{fail("%v", err)}
	}
	errs := checkExtAuthz(ext, clusters)

	rc := hcm.GetRouteConfig()
	if rc == nil {
		return append(errs, fail("route_config is not inline; it cannot be checked"))
	}
	for _, vh := range rc.GetVirtualHosts() {
		errs = append(errs, checkVirtualHost(vh, clusters)...)
	}
	for i := range errs {
		errs[i] = fmt.Errorf("%s: %w", where, errs[i])
	}
	return errs
}

// checkExtAuthz checks the ext_authz filter's settings.
func checkExtAuthz(ext *extauthzv3.ExtAuthz, clusters map[string]*clusterv3.Cluster) []error {
	var errs []error
	if ext.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		errs = append(errs, errors.New("ext_authz transport_api_version is not V3"))
	}
	if ext.GetFailureModeAllow() {
		errs = append(errs, errors.New("ext_authz failure_mode_allow is true (fails open)"))
	}
	if c := ext.GetStatusOnError().GetCode(); c < 500 {
		errs = append(errs, fmt.Errorf("ext_authz status_on_error is %d, want a 5xx "+
			"so an outage is not mistaken for a denial", c))
	}
	if ext.GetFilterEnabled() != nil || ext.GetFilterEnabledMetadata() != nil {
		errs = append(errs, errors.New("ext_authz filter_enabled skips some requests"))
	}
	if wb := ext.GetWithRequestBody(); wb != nil && !wb.GetAllowPartialMessage() {
		errs = append(errs, errors.New("ext_authz with_request_body without "+
			"allow_partial_message answers 413 to large MCP requests"))
	}

	switch {
	case ext.GetGrpcService() != nil:
		gs := ext.GetGrpcService()
		if gs.GetTimeout() == nil {
			errs = append(errs, errors.New("ext_authz grpc_service has no timeout"))
		}
		name := gs.GetEnvoyGrpc().GetClusterName()
		if name == "" {
			return append(errs, errors.New("ext_authz grpc_service is not envoy_grpc"))
		}
		errs = append(errs, checkGRPCCluster(name, clusters[name])...)
	case ext.GetHttpService() != nil:
		name := ext.GetHttpService().GetServerUri().GetCluster()
		if clusters[name] == nil {
			errs = append(errs, fmt.Errorf("ext_authz http_service cluster %q is not defined", name))
		}
	default:
		errs = append(errs, errors.New("ext_authz has neither grpc_service nor http_service"))
	}
	return errs
}

// checkGRPCCluster checks that the ext_authz gRPC cluster exists, speaks
// HTTP/2 and is health-checked over gRPC.
func checkGRPCCluster(name string, c *clusterv3.Cluster) []error {
	if c == nil {
		return []error{fmt.Errorf("ext_authz cluster %q is not defined", name)}
	}
	var errs []error
	opts, ok := c.GetTypedExtensionProtocolOptions()[protocolOptions]
	if !ok {
		errs = append(errs, fmt.Errorf("cluster %q has no %s (gRPC needs HTTP/2)",
			name, protocolOptions))
	} else if po, err := unpack[*upstreamhttpv3.HttpProtocolOptions](opts); err != nil {
		errs = append(errs, fmt.Errorf("cluster %q: %w", name, err))
	} else if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		errs = append(errs, fmt.Errorf("cluster %q does not set explicit HTTP/2", name))
	}
	if !slices.ContainsFunc(c.GetHealthChecks(), func(h *corev3.HealthCheck) bool {
		return h.GetGrpcHealthCheck() != nil
	}) {
		errs = append(errs, fmt.Errorf("cluster %q has no gRPC health check", name))
	}
	return errs
}

// checkVirtualHost checks one virtual host's routes: ext_authz is disabled
// exactly on the OAuth, consent page and /.well-known/ routes, every public
// path reaches such a route and every checked path a route that runs
// ext_authz.
func checkVirtualHost(vh *routev3.VirtualHost, clusters map[string]*clusterv3.Cluster) []error {
	var errs []error
	if extAuthzOff(vh.GetTypedPerFilterConfig()) {
		errs = append(errs, fmt.Errorf("virtual host %q disables ext_authz", vh.GetName()))
	}
	for _, r := range vh.GetRoutes() {
		if c := r.GetRoute().GetCluster(); c != "" && clusters[c] == nil {
			errs = append(errs, fmt.Errorf("route %q: cluster %q is not defined", r.GetName(), c))
		}
		public, off := isPublicMatch(r.GetMatch()), extAuthzOff(r.GetTypedPerFilterConfig())
		switch {
		case public && !off:
			errs = append(errs, fmt.Errorf("OAuth route %q runs ext_authz", r.GetName()))
		case !public && off:
			errs = append(errs, fmt.Errorf("route %q disables ext_authz but is not an "+
				"OAuth, consent page or /.well-known/ route", r.GetName()))
		}
	}

	publicClusters := map[string]bool{}
	for _, p := range publicPaths {
		r := firstMatch(vh, p)
		switch {
		case r == nil:
			errs = append(errs, fmt.Errorf("virtual host %q: no route for %s", vh.GetName(), p))
		case !extAuthzOff(r.GetTypedPerFilterConfig()):
			errs = append(errs, fmt.Errorf("virtual host %q: %s goes to route %q, which runs "+
				"ext_authz", vh.GetName(), p, r.GetName()))
		default:
			publicClusters[r.GetRoute().GetCluster()] = true
		}
	}
	for _, p := range checkedPaths {
		r := firstMatch(vh, p)
		switch {
		case r == nil:
			// Envoy answers 404 itself.
		case extAuthzOff(r.GetTypedPerFilterConfig()):
			errs = append(errs, fmt.Errorf("virtual host %q: %s goes to route %q without "+
				"ext_authz", vh.GetName(), p, r.GetName()))
		case publicClusters[r.GetRoute().GetCluster()]:
			errs = append(errs, fmt.Errorf("virtual host %q: %s goes to the authorization "+
				"server's cluster %q", vh.GetName(), p, r.GetRoute().GetCluster()))
		}
	}
	return errs
}

// isPublicMatch reports whether a route match names an OAuth endpoint, a
// consent page or /.well-known/.
func isPublicMatch(m *routev3.RouteMatch) bool {
	lit := firstNonEmpty(m.GetPath(), m.GetPrefix(), m.GetPathSeparatedPrefix())
	switch lit {
	case "/authorize", "/token", "/register", "/register/", "/revoke", "/introspect",
		"/consents", "/consents/", "/consents/revoke", "/jwks.json":
		return true
	}
	return strings.HasPrefix(lit, "/.well-known/")
}

// extAuthzOff reports whether per-filter configs disable ext_authz, either
// with ExtAuthzPerRoute{disabled: true} or a FilterConfig{disabled: true}.
func extAuthzOff(cfg map[string]*anypb.Any) bool {
	a, ok := cfg[extAuthzFilter]
	if !ok {
		return false
	}
	if fc, err := unpack[*routev3.FilterConfig](a); err == nil {
		if fc.GetDisabled() {
			return true
		}
		a = fc.GetConfig()
	}
	per, err := unpack[*extauthzv3.ExtAuthzPerRoute](a)
	return err == nil && per.GetDisabled()
}

// firstMatch returns the route Envoy picks for a GET of path (with optional
// query), or nil. Only path matching is modelled; routes with header, query
// or other matchers are skipped, since a plain request may not match them.
func firstMatch(vh *routev3.VirtualHost, path string) *routev3.Route {
	p, _, _ := strings.Cut(path, "?")
	for _, r := range vh.GetRoutes() {
		m := r.GetMatch()
		if len(m.GetHeaders()) > 0 || len(m.GetQueryParameters()) > 0 ||
			m.GetGrpc() != nil || m.GetRuntimeFraction() != nil {
			continue
		}
		if pathMatches(m, p) {
			return r
		}
	}
	return nil
}

// pathMatches evaluates a route's path specifier on p.
func pathMatches(m *routev3.RouteMatch, p string) bool {
	fold := func(s string) string { return s }
	if cs := m.GetCaseSensitive(); cs != nil && !cs.GetValue() {
		fold = strings.ToLower
	}
	switch spec := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		return strings.HasPrefix(fold(p), fold(spec.Prefix))
	case *routev3.RouteMatch_Path:
		return fold(p) == fold(spec.Path)
	case *routev3.RouteMatch_PathSeparatedPrefix:
		x := fold(spec.PathSeparatedPrefix)
		return fold(p) == x || strings.HasPrefix(fold(p), x+"/")
	case *routev3.RouteMatch_SafeRegex:
		re, err := regexp.Compile(`^(?:` + spec.SafeRegex.GetRegex() + `)$`)
		return err == nil && re.MatchString(p)
	}
	return false
}

func TestFindBootstrapsRule(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	files := map[string]string{
		"docker-compose.yml": "services:\n  envoy:\n    image: envoy\n",
		"k8s/deploy.yaml": "apiVersion: v1\nkind: ConfigMap\n---\n" +
			"apiVersion: v1\nkind: Service\n",
		"k8s/list.yaml":        "- a\n- b\n",
		"envoy/bootstrap.yaml": "static_resources: {}\n",
		"envoy/two.yaml": "# comment\nkind: X\n--- # second\n" +
			"static_resources: {clusters: []}\n",
		"envoy/testdata/broken.yaml":    "static_resources: [",
		".hidden/bootstrap.yaml":        "static_resources: {}\n",
		"node_modules/x/bootstrap.yaml": "static_resources: {}\n",
		"notes.txt":                     "static_resources: {}\n",
	}
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	got, err := findBootstraps(root)
	if err != nil {
		t.Fatalf("findBootstraps: %v", err)
	}
	var names []string
	for _, f := range got {
		r, _ := filepath.Rel(root, f.path)
		names = append(names, filepath.ToSlash(r))
	}
	want := []string{"envoy/bootstrap.yaml", "envoy/two.yaml"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("bootstraps found (-want +got):\n%s", diff)
	}

	bad := filepath.Join(root, "bad.yaml")
	if err := os.WriteFile(bad, []byte("static_resources: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := findBootstraps(root); err == nil {
		t.Errorf("findBootstraps accepted a YAML file that does not parse")
	}
}
