package envoy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// tree is a parsed YAML document as generic JSON values.
type tree = map[string]any

// loadTree parses one of this package's bootstraps into generic values.
func loadTree(t *testing.T, name string) tree {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("config", name))
	if err != nil {
		t.Fatal(err)
	}
	var m tree
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("parsing %s: %v", name, err)
	}
	return m
}

// at walks v by map keys (string) and list indexes (int).
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(tree)
			if !ok {
				t.Fatalf("at %v: %q in a %T", path, k, v)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: index %d in %T", path, k, v)
			}
			v = l[k]
		}
	}
	return v
}

func hcmOf(t *testing.T, m tree) tree {
	t.Helper()
	return at(t, m, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0,
		"typed_config").(tree)
}

func extAuthzOf(t *testing.T, m tree) tree {
	t.Helper()
	return at(t, hcmOf(t, m), "http_filters", 0, "typed_config").(tree)
}

// named returns the element of list whose "name" is name.
func named(t *testing.T, list any, name string) tree {
	t.Helper()
	for _, x := range list.([]any) {
		if e := x.(tree); e["name"] == name {
			return e
		}
	}
	t.Fatalf("nothing named %q", name)
	return nil
}

func routeOf(t *testing.T, m tree, name string) tree {
	t.Helper()
	return named(t, at(t, hcmOf(t, m), "route_config", "virtual_hosts", 0, "routes"), name)
}

func clusterOf(t *testing.T, m tree, name string) tree {
	t.Helper()
	return named(t, at(t, m, "static_resources", "clusters"), name)
}

// TestEnvoyConfigsBrokenCopies breaks front-proxy.yaml in one way at a time
// and shows that the checks of TestEnvoyConfigs catch each.
func TestEnvoyConfigsBrokenCopies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(t *testing.T, m tree)
		wantErr string
	}{
		{
			name: "ext_authz not the first HTTP filter",
			mutate: func(t *testing.T, m tree) {
				h := hcmOf(t, m)
				f := h["http_filters"].([]any)
				h["http_filters"] = []any{f[1], f[0]}
			},
			wantErr: "first HTTP filter is not envoy.filters.http.ext_authz",
		},
		{
			name: "router not last",
			mutate: func(t *testing.T, m tree) {
				h := hcmOf(t, m)
				h["http_filters"] = h["http_filters"].([]any)[:1]
			},
			wantErr: "last HTTP filter",
		},
		{
			name: "ext_authz disabled by default",
			mutate: func(t *testing.T, m tree) {
				at(t, hcmOf(t, m), "http_filters", 0).(tree)["disabled"] = true
			},
			wantErr: "ext_authz is disabled by default",
		},
		{
			name:    "fails open",
			mutate:  func(t *testing.T, m tree) { extAuthzOf(t, m)["failure_mode_allow"] = true },
			wantErr: "failure_mode_allow is true",
		},
		{
			name:    "status_on_error unset",
			mutate:  func(t *testing.T, m tree) { delete(extAuthzOf(t, m), "status_on_error") },
			wantErr: "status_on_error is 0",
		},
		{
			name: "status_on_error 403",
			mutate: func(t *testing.T, m tree) {
				extAuthzOf(t, m)["status_on_error"] = tree{"code": "Forbidden"}
			},
			wantErr: "status_on_error is 403",
		},
		{
			name: "transport API v2",
			mutate: func(t *testing.T, m tree) {
				delete(extAuthzOf(t, m), "transport_api_version")
			},
			wantErr: "transport_api_version is not V3",
		},
		{
			name: "filter_enabled sampling",
			mutate: func(t *testing.T, m tree) {
				extAuthzOf(t, m)["filter_enabled"] = tree{
					"default_value": tree{"numerator": 50}, "runtime_key": "authz_on",
				}
			},
			wantErr: "filter_enabled skips some requests",
		},
		{
			name: "body without allow_partial_message",
			mutate: func(t *testing.T, m tree) {
				at(t, extAuthzOf(t, m), "with_request_body").(tree)["allow_partial_message"] = false
			},
			wantErr: "answers 413",
		},
		{
			name: "no gRPC timeout",
			mutate: func(t *testing.T, m tree) {
				delete(at(t, extAuthzOf(t, m), "grpc_service").(tree), "timeout")
			},
			wantErr: "grpc_service has no timeout",
		},
		{
			name: "gRPC cluster not defined",
			mutate: func(t *testing.T, m tree) {
				at(t, extAuthzOf(t, m), "grpc_service", "envoy_grpc").(tree)["cluster_name"] = "nope"
			},
			wantErr: `ext_authz cluster "nope" is not defined`,
		},
		{
			name: "gRPC cluster without HTTP/2",
			mutate: func(t *testing.T, m tree) {
				delete(clusterOf(t, m, "mcp-authz-grpc"), "typed_extension_protocol_options")
			},
			wantErr: "gRPC needs HTTP/2",
		},
		{
			name: "gRPC cluster without health check",
			mutate: func(t *testing.T, m tree) {
				delete(clusterOf(t, m, "mcp-authz-grpc"), "health_checks")
			},
			wantErr: "has no gRPC health check",
		},
		{
			name: "OAuth route runs ext_authz",
			mutate: func(t *testing.T, m tree) {
				delete(routeOf(t, m, "oauth-token"), "typed_per_filter_config")
			},
			wantErr: `OAuth route "oauth-token" runs ext_authz`,
		},
		{
			name: "OAuth route missing",
			mutate: func(t *testing.T, m tree) {
				vh := at(t, hcmOf(t, m), "route_config", "virtual_hosts", 0).(tree)
				var keep []any
				for _, r := range vh["routes"].([]any) {
					if r.(tree)["name"] != "oauth-register" {
						keep = append(keep, r)
					}
				}
				vh["routes"] = keep
			},
			wantErr: `/register goes to route "not-found", which runs ext_authz`,
		},
		{
			name: "consent pages not routed",
			mutate: func(t *testing.T, m tree) {
				vh := at(t, hcmOf(t, m), "route_config", "virtual_hosts", 0).(tree)
				var keep []any
				for _, r := range vh["routes"].([]any) {
					if r.(tree)["name"] != "oauth-consents" {
						keep = append(keep, r)
					}
				}
				vh["routes"] = keep
			},
			wantErr: `/consents goes to route "not-found", which runs ext_authz`,
		},
		{
			name: "consent withdrawal not routed",
			mutate: func(t *testing.T, m tree) {
				routeOf(t, m, "oauth-consents")["match"] = tree{"path": "/consents"}
			},
			wantErr: `/consents/revoke goes to route "not-found", which runs ext_authz`,
		},
		{
			name: "consent route runs ext_authz",
			mutate: func(t *testing.T, m tree) {
				delete(routeOf(t, m, "oauth-consents"), "typed_per_filter_config")
			},
			wantErr: `OAuth route "oauth-consents" runs ext_authz`,
		},
		{
			name: "consent route a bare prefix",
			mutate: func(t *testing.T, m tree) {
				routeOf(t, m, "oauth-consents")["match"] = tree{"prefix": "/consents"}
			},
			wantErr: `/consentsx goes to route "oauth-consents" without ext_authz`,
		},
		{
			name: "MCP route without ext_authz",
			mutate: func(t *testing.T, m tree) {
				routeOf(t, m, "mcp")["typed_per_filter_config"] =
					routeOf(t, m, "oauth-token")["typed_per_filter_config"]
			},
			wantErr: `route "mcp" disables ext_authz`,
		},
		{
			name: "MCP path shadowed by a public route",
			mutate: func(t *testing.T, m tree) {
				routeOf(t, m, "well-known")["match"] = tree{"prefix": "/"}
			},
			wantErr: `/mcp goes to route "well-known" without ext_authz`,
		},
		{
			name: "ext_authz disabled on the virtual host",
			mutate: func(t *testing.T, m tree) {
				vh := at(t, hcmOf(t, m), "route_config", "virtual_hosts", 0).(tree)
				vh["typed_per_filter_config"] = routeOf(t, m, "oauth-token")["typed_per_filter_config"]
			},
			wantErr: `virtual host "mcp" disables ext_authz`,
		},
		{
			name: "route to an undefined cluster",
			mutate: func(t *testing.T, m tree) {
				at(t, routeOf(t, m, "mcp"), "route").(tree)["cluster"] = "mcp-srv"
			},
			wantErr: `cluster "mcp-srv" is not defined`,
		},
		{
			name: "unknown field inside a typed config",
			mutate: func(t *testing.T, m tree) {
				extAuthzOf(t, m)["failure_mode_alow"] = false
			},
			wantErr: "failure_mode_alow",
		},
		{
			name: "unregistered typed config",
			mutate: func(t *testing.T, m tree) {
				at(t, hcmOf(t, m), "http_filters", 1, "typed_config").(tree)["@type"] =
					"type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope"
			},
			wantErr: "envoy.extensions.filters.http.nope.v3.Nope",
		},
		{
			name: "invalid value inside the ext_authz typed config",
			mutate: func(t *testing.T, m tree) {
				at(t, extAuthzOf(t, m), "with_request_body").(tree)["max_request_bytes"] = 0
			},
			wantErr: "MaxRequestBytes",
		},
		{
			name: "invalid per-route typed config",
			mutate: func(t *testing.T, m tree) {
				cfg := at(t, routeOf(t, m, "oauth-revoke"), "typed_per_filter_config",
					extAuthzFilter).(tree)
				delete(cfg, "disabled") // the override oneof is required
			},
			wantErr: "Override",
		},
		{
			name: "invalid protocol options inside a cluster",
			mutate: func(t *testing.T, m tree) {
				at(t, clusterOf(t, m, "mcp-authz-grpc"), "typed_extension_protocol_options",
					protocolOptions, "explicit_http_config").(tree)["http2_protocol_options"] =
					tree{"max_concurrent_streams": 0}
			},
			wantErr: "MaxConcurrentStreams",
		},
		{
			name: "invalid access logger config",
			mutate: func(t *testing.T, m tree) {
				at(t, hcmOf(t, m), "access_log", 0, "typed_config").(tree)["log_format"] = tree{}
			},
			wantErr: "access_log",
		},
		{
			name: "health check without interval",
			mutate: func(t *testing.T, m tree) {
				delete(at(t, clusterOf(t, m, "mcp-authz-grpc"), "health_checks", 0).(tree),
					"interval")
			},
			wantErr: "Interval",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := loadTree(t, "front-proxy.yaml")
			tt.mutate(t, m)
			js, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			err = errors.Join(checkBootstrapJSON(js)...)
			if err == nil {
				t.Fatalf("broken copy passed the checks; want an error containing %q", tt.wantErr)
			}
			t.Logf("caught: %v", err)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v\nwant it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestEnvoyConfigsUnbrokenCopy shows that the parse/marshal round trip of
// the broken-copy test keeps a good file good, so each failure above comes
// from its mutation.
func TestEnvoyConfigsUnbrokenCopy(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"front-proxy.yaml", "sidecar.yaml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			js, err := json.Marshal(loadTree(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := errors.Join(checkBootstrapJSON(js)...); err != nil {
				t.Errorf("unchanged copy fails: %v", err)
			}
		})
	}
}
