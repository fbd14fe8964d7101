package envoy

import (
	"context"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/mcp-authz/mcp-authz/authz"
)

// Short names for the attribute messages tests edit.
type (
	attrs     = authv3.AttributeContext
	httpAttrs = authv3.AttributeContext_HttpRequest
)

const requestID = "9c1e7a52-3b0f-4f55-9d1a-0f2d64b3c8e1"

// envoyCheck returns a CheckRequest shaped as Envoy 1.3x sends it for
// "POST /mcp" with a bearer token, default settings (headers map with
// pseudo-headers, no raw headers, no body), changed by mod.
func envoyCheck(mod func(a *attrs, h *httpAttrs)) *authv3.CheckRequest {
	h := &authv3.AttributeContext_HttpRequest{
		Id:       requestID,
		Method:   "POST",
		Path:     "/mcp?session=1",
		Host:     "localhost:8080",
		Scheme:   "http",
		Protocol: "HTTP/1.1",
		Size:     52,
		Headers: map[string]string{
			":authority":        "localhost:8080",
			":method":           "POST",
			":path":             "/mcp?session=1",
			":scheme":           "http",
			"authorization":     "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig",
			"content-type":      "application/json",
			"content-length":    "52",
			"mcp-method":        "tools/call",
			"x-forwarded-proto": "http",
			"x-request-id":      requestID,
		},
	}
	a := &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: sockAddr("172.18.0.1", 53412)},
		Destination: &authv3.AttributeContext_Peer{
			Address: sockAddr("172.18.0.3", 8080),
		},
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
			Http: h,
		},
	}
	if mod != nil {
		mod(a, h)
	}
	return &authv3.CheckRequest{Attributes: a}
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{
			Address:       ip,
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		},
	}}
}

// rawHeaders converts pairs to header_map entries filled as Envoy does with
// encode_raw_headers (raw_value set, value empty).
func rawHeaders(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

// wantPost is what the checker sees for envoyCheck(nil).
func wantPost() seenRequest {
	return seenRequest{
		DecisionID:    requestID,
		Method:        "POST",
		Scheme:        "http",
		Host:          "localhost:8080",
		Path:          "/mcp?session=1",
		Authorization: []string{"Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig"},
		Headers: map[string]string{
			"content-type": "application/json",
			"mcp-method":   "tools/call",
		},
	}
}

func TestCheckTranslatesRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		req  *authv3.CheckRequest
		want func(w *seenRequest)
	}{
		{
			name: "headers map with pseudo-headers",
			req:  envoyCheck(nil),
			want: func(*seenRequest) {},
		},
		{
			name: "pseudo-headers only",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Id, h.Method, h.Path, h.Host, h.Scheme = "", "", "", "", ""
				h.Headers[":authority"] = "mcp.example.test"
				h.Headers["x-request-id"] = "from-header"
			}),
			want: func(w *seenRequest) {
				w.Host = "mcp.example.test"
				w.DecisionID = "from-header"
			},
		},
		{
			name: "host header without :authority",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Host = ""
				delete(h.Headers, ":authority")
				h.Headers["host"] = "h1.example.test"
			}),
			want: func(w *seenRequest) {
				w.Host = "h1.example.test"
				w.Headers["host"] = "h1.example.test"
			},
		},
		{
			name: "scheme from x-forwarded-proto",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Scheme = ""
				delete(h.Headers, ":scheme")
				h.Headers["x-forwarded-proto"] = "https, http"
			}),
			want: func(w *seenRequest) { w.Scheme = "https" },
		},
		{
			name: "header_map only",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Headers = nil
				h.HeaderMap = rawHeaders(
					":authority", "localhost:8080",
					":path", "/mcp?session=1",
					":method", "POST",
					"authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.sig",
					"Content-Type", "application/json",
					"x-custom", "one",
					"x-custom", "two",
				)
			}),
			want: func(w *seenRequest) {
				w.Headers = map[string]string{"content-type": "application/json", "x-custom": "one,two"}
			},
		},
		{
			name: "header_map with value instead of raw_value",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Headers = nil
				h.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
					{Key: "authorization", Value: "Bearer v"},
				}}
			}),
			want: func(w *seenRequest) {
				w.Authorization = []string{"Bearer v"}
				w.Headers = nil
			},
		},
		{
			name: "two authorization headers in header_map stay apart",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Headers = nil
				h.HeaderMap = rawHeaders("authorization", "Bearer a", "authorization", "Bearer b")
			}),
			want: func(w *seenRequest) {
				w.Authorization = []string{"Bearer a", "Bearer b"}
				w.Headers = nil
			},
		},
		{
			name: "two authorization headers joined by Envoy stay one value",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Headers["authorization"] = "Bearer a,Bearer b"
			}),
			want: func(w *seenRequest) { w.Authorization = []string{"Bearer a,Bearer b"} },
		},
		{
			name: "no authorization",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				delete(h.Headers, "authorization")
			}),
			want: func(w *seenRequest) { w.Authorization = nil },
		},
		{
			name: "partial body",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.Body = `{"jsonrpc":"2.0","method":"tools/c`
				h.Headers[headerPartialBody] = "true"
			}),
			want: func(w *seenRequest) {
				w.Body = `{"jsonrpc":"2.0","method":"tools/c`
				w.BodyPartial = true
			},
		},
		{
			name: "raw body, complete",
			req: envoyCheck(func(_ *attrs, h *httpAttrs) {
				h.RawBody = []byte(`{"jsonrpc":"2.0"}`)
				h.Headers[headerPartialBody] = "false"
			}),
			want: func(w *seenRequest) { w.Body = `{"jsonrpc":"2.0"}` },
		},
		{
			name: "context extensions",
			req: envoyCheck(func(a *attrs, _ *httpAttrs) {
				a.ContextExtensions = map[string]string{"resource": "http://localhost:8080/mcp"}
			}),
			want: func(w *seenRequest) {
				w.ContextExtensions = map[string]string{"resource": "http://localhost:8080/mcp"}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fc := &fakeChecker{decision: denyNoToken}
			srv := NewAuthorizationServer(fc, discard)
			if _, err := srv.Check(t.Context(), tt.req); err != nil {
				t.Fatalf("Check: %v", err)
			}
			want := wantPost()
			tt.want(&want)
			got := fc.calls()
			if diff := cmp.Diff([]seenRequest{want}, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("request seen by the checker (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckGeneratesMissingDecisionID(t *testing.T) {
	t.Parallel()
	fc := &fakeChecker{decision: allowDecision}
	srv := NewAuthorizationServer(fc, discard)
	req := envoyCheck(func(_ *attrs, h *httpAttrs) {
		h.Id = ""
		delete(h.Headers, "x-request-id")
	})
	for range 2 {
		if _, err := srv.Check(t.Context(), req); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	calls := fc.calls()
	a, b := calls[0].DecisionID, calls[1].DecisionID
	if !strings.HasPrefix(a, "mcpz-") || a == b {
		t.Errorf("generated decision ids = %q, %q; want distinct ids starting mcpz-", a, b)
	}
}

// overwriteHeader is the header option expected in answers.
func overwriteHeader(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: k, Value: v},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

func stringStruct(kv ...string) *structpb.Struct {
	s := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.Fields[kv[i]] = structpb.NewStringValue(kv[i+1])
	}
	return s
}

func denied(code codes.Code, reason authz.Reason, status typev3.StatusCode, body string,
	headers ...*corev3.HeaderValueOption) *authv3.CheckResponse {
	headers = append(headers,
		overwriteHeader("content-type", "application/json"),
		overwriteHeader("cache-control", "no-store"))
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(code), Message: string(reason)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: status},
			Headers: headers,
			Body:    body,
		}},
		DynamicMetadata: stringStruct("reason", string(reason), "decision_id", requestID),
	}
}

func TestCheckAnswerShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		checker *fakeChecker
		want    *authv3.CheckResponse
	}{
		{
			name:    "allow",
			checker: &fakeChecker{decision: allowDecision},
			want: &authv3.CheckResponse{
				Status: &rpcstatus.Status{Code: int32(codes.OK)},
				HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
					Headers: []*corev3.HeaderValueOption{
						overwriteHeader("x-mcp-client-id", "client-1"),
						overwriteHeader("x-mcp-subject", "alice"),
						overwriteHeader("x-mcp-scope", "mcp:tools mcp:resources"),
					},
					HeadersToRemove: []string{"authorization"},
				}},
				DynamicMetadata: stringStruct(
					"client_id", "client-1", "subject", "alice",
					"scope", "mcp:tools mcp:resources", "reason", "ok",
					"decision_id", requestID),
			},
		},
		{
			name: "allow with empty identity removes the headers",
			checker: &fakeChecker{decision: &authz.Decision{
				Allow: true, Reason: authz.ReasonOK, ClientID: "c", Subject: "bad\r\nvalue",
			}},
			want: &authv3.CheckResponse{
				Status: &rpcstatus.Status{Code: int32(codes.OK)},
				HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
					Headers: []*corev3.HeaderValueOption{overwriteHeader("x-mcp-client-id", "c")},
					HeadersToRemove: []string{
						"authorization", "x-mcp-subject", "x-mcp-scope",
					},
				}},
				DynamicMetadata: stringStruct(
					"client_id", "c", "subject", "bad\r\nvalue", "scope", "",
					"reason", "ok", "decision_id", requestID),
			},
		},
		{
			name:    "deny 401 with challenge",
			checker: &fakeChecker{decision: denyNoToken},
			want: denied(codes.Unauthenticated, authz.ReasonNoToken, typev3.StatusCode_Unauthorized,
				`{"error":"invalid_token"}`, overwriteHeader("www-authenticate", challenge)),
		},
		{
			name:    "deny 403 insufficient scope",
			checker: &fakeChecker{decision: denyScope},
			want: denied(codes.PermissionDenied, authz.ReasonInsufficientScope,
				typev3.StatusCode_Forbidden, `{"error":"insufficient_scope"}`,
				overwriteHeader("www-authenticate", denyScope.WWWAuthenticate)),
		},
		{
			name: "deny without status or body",
			checker: &fakeChecker{decision: &authz.Decision{
				Reason: authz.ReasonRevokedClient,
			}},
			want: denied(codes.PermissionDenied, authz.ReasonRevokedClient,
				typev3.StatusCode_Forbidden,
				`{"error":"access_denied","reason":"revoked_client"}`),
		},
		{
			name: "deny with a status Envoy does not define",
			checker: &fakeChecker{decision: &authz.Decision{
				Reason: authz.ReasonWrongAudience, Status: 499, Body: []byte(`{}`),
			}},
			want: denied(codes.PermissionDenied, authz.ReasonWrongAudience,
				typev3.StatusCode_Forbidden, `{}`),
		},
		{
			name:    "checker returns nil",
			checker: &fakeChecker{},
			want: denied(codes.Unavailable, reasonInternal, typev3.StatusCode_ServiceUnavailable,
				`{"error":"temporarily_unavailable","reason":"internal_error"}`),
		},
		{
			name:    "checker panics",
			checker: &fakeChecker{decision: allowDecision, panics: true},
			want: denied(codes.Unavailable, reasonInternal, typev3.StatusCode_ServiceUnavailable,
				`{"error":"temporarily_unavailable","reason":"internal_error"}`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := NewAuthorizationServer(tt.checker, discard)
			got, err := srv.Check(t.Context(), envoyCheck(nil))
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("CheckResponse (-want +got):\n%s", diff)
			}
			assertWellFormed(t, got)
		})
	}
}

// assertWellFormed checks the invariants every answer keeps: a status is
// set; OK comes only with ok_response; a denial has a denied_response with
// a status Envoy accepts; the response passes its proto validation.
func assertWellFormed(t *testing.T, resp *authv3.CheckResponse) {
	t.Helper()
	if resp.GetStatus() == nil {
		t.Fatalf("status unset (Envoy reads that as OK): %v", resp)
	}
	if err := resp.ValidateAll(); err != nil {
		t.Errorf("CheckResponse does not validate: %v", err)
	}
	ok := resp.GetStatus().GetCode() == int32(codes.OK)
	switch r := resp.GetHttpResponse().(type) {
	case *authv3.CheckResponse_OkResponse:
		if !ok {
			t.Errorf("ok_response with status %d", resp.GetStatus().GetCode())
		}
	case *authv3.CheckResponse_DeniedResponse:
		if ok {
			t.Errorf("denied_response with status OK")
		}
		if c := r.DeniedResponse.GetStatus().GetCode(); c < 400 {
			t.Errorf("denied_response status %d, want 4xx or 5xx", c)
		}
	default:
		t.Errorf("http_response is %T, want ok or denied", r)
	}
}

func TestCheckExpiredDeadline(t *testing.T) {
	t.Parallel()
	fc := &fakeChecker{decision: allowDecision}
	var observed []authz.Reason
	srv := NewAuthorizationServer(fc, discard, Options{
		Observe: func(d *authz.Decision, _ time.Duration) { observed = append(observed, d.Reason) },
	})
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()

	got, err := srv.Check(ctx, envoyCheck(nil))
	if err != nil {
		t.Fatalf("Check with an expired deadline returned an RPC error: %v", err)
	}
	want := denied(codes.Unavailable, authz.ReasonDeadline, typev3.StatusCode_ServiceUnavailable,
		`{"error":"temporarily_unavailable","reason":"deadline_exceeded"}`)
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("CheckResponse (-want +got):\n%s", diff)
	}
	assertWellFormed(t, got)
	if n := len(fc.calls()); n != 0 {
		t.Errorf("checker called %d times after the deadline, want 0", n)
	}
	if diff := cmp.Diff([]authz.Reason{authz.ReasonDeadline}, observed); diff != "" {
		t.Errorf("observed reasons (-want +got):\n%s", diff)
	}
}

func TestGRPCCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		want   codes.Code
	}{
		{401, codes.Unauthenticated},
		{403, codes.PermissionDenied},
		{400, codes.PermissionDenied},
		{429, codes.ResourceExhausted},
		{503, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(statusName(tt.status), func(t *testing.T) {
			if got := grpcCode(tt.status); got != tt.want {
				t.Errorf("grpcCode(%d) = %v, want %v", tt.status, got, tt.want)
			}
		})
	}
}

func statusName(status int) string { return typev3.StatusCode(status).String() }
