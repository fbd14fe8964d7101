package envoy

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/mcp-authz/mcp-authz/authz"
)

// MetadataNamespace is where Envoy files the dynamic metadata of ext_authz
// answers; access logs read it as %DYNAMIC_METADATA(<namespace>:<key>)%.
const MetadataNamespace = "envoy.filters.http.ext_authz"

// Dynamic metadata keys set on every answer (reason, decision_id) and on
// allowed requests (client_id, subject, scope).
const (
	MetaReason     = "reason"
	MetaDecisionID = "decision_id"
	MetaClientID   = "client_id"
	MetaSubject    = "subject"
	MetaScope      = "scope"
)

// AuthorizationServer is Envoy's ext_authz v3 gRPC service backed by a
// Checker. It is safe for concurrent use.
type AuthorizationServer struct {
	authv3.UnimplementedAuthorizationServer

	checker Checker
	logger  *slog.Logger
	opts    Options
	ids     *idSource
}

var _ authv3.AuthorizationServer = (*AuthorizationServer)(nil)

// NewAuthorizationServer returns an ext_authz server asking checker about
// each request. A nil logger means slog.Default(). Options are merged, later
// non-nil fields winning; none is needed.
func NewAuthorizationServer(checker Checker, logger *slog.Logger,
	opts ...Options) *AuthorizationServer {
	if logger == nil {
		logger = slog.Default()
	}
	return &AuthorizationServer{
		checker: checker,
		logger:  logger.With("component", "envoy.grpc"),
		opts:    merge(opts),
		ids:     newIDSource(),
	}
}

// Register registers, on s, an AuthorizationServer asking checker (see
// NewAuthorizationServer) and the standard gRPC health service, with both
// the overall health ("") and envoy.service.auth.v3.Authorization SERVING.
// It returns the health server so the caller can report NOT_SERVING
// (health.Server.Shutdown) while draining.
func Register(s grpc.ServiceRegistrar, checker Checker, logger *slog.Logger,
	opts ...Options) *health.Server {
	RegisterServer(s, NewAuthorizationServer(checker, logger, opts...))
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName,
		healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, hs)
	return hs
}

// RegisterServer registers srv alone on s, for callers that run their own
// health service.
func RegisterServer(s grpc.ServiceRegistrar, srv *AuthorizationServer) {
	authv3.RegisterAuthorizationServer(s, srv)
}

// Check answers one Envoy ext_authz request. It never returns an error: a
// denial, an expired deadline and a failed Checker are all answered with a
// well-formed CheckResponse whose status is not OK.
func (s *AuthorizationServer) Check(ctx context.Context,
	cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	req := requestFromCheck(cr, s.ids.next)
	d := decide(ctx, s.checker, req, s.logger)
	resp := s.response(req.DecisionID, d)
	observe(ctx, s.logger, &s.opts, req.DecisionID, d, start)
	return resp, nil
}

// response builds the CheckResponse for a Decision.
func (s *AuthorizationServer) response(decisionID string,
	d *authz.Decision) *authv3.CheckResponse {
	if d.Allow {
		return s.allowResponse(decisionID, d)
	}
	return denyResponse(decisionID, d)
}

// allowResponse sets the identity headers on the upstream request
// (replacing client-sent copies, removing the header when the value is
// empty) and removes Authorization.
func (s *AuthorizationServer) allowResponse(decisionID string,
	d *authz.Decision) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{
		Headers:         make([]*corev3.HeaderValueOption, 0, 3),
		HeadersToRemove: make([]string, 1, 4),
	}
	ok.HeadersToRemove[0] = "authorization"
	hb := newHeaderBuf(3)
	for _, id := range identities(d, decisionID, s.logger) {
		if id.value == "" {
			ok.HeadersToRemove = append(ok.HeadersToRemove, id.name)
			continue
		}
		ok.Headers = append(ok.Headers, hb.overwrite(id.name, id.value))
	}

	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		DynamicMetadata: metadata(
			MetaReason, string(d.Reason),
			MetaDecisionID, decisionID,
			MetaClientID, d.ClientID,
			MetaSubject, d.Subject,
			MetaScope, d.Scope,
		),
	}
}

// denyResponse answers a denial with a non-OK status and the Decision's
// HTTP status, challenge and JSON body.
func denyResponse(decisionID string, d *authz.Decision) *authv3.CheckResponse {
	status := denyStatus(d)
	headers := make([]*corev3.HeaderValueOption, 0, 3)
	hb := newHeaderBuf(3)
	if d.WWWAuthenticate != "" && validHeaderValue(d.WWWAuthenticate) {
		headers = append(headers, hb.overwrite("www-authenticate", d.WWWAuthenticate))
	}
	headers = append(headers,
		hb.overwrite("content-type", "application/json"),
		hb.overwrite("cache-control", "no-store"))

	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode(status)), Message: string(d.Reason)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: httpStatusCode(status)},
			Headers: headers,
			Body:    string(denyBody(d)),
		}},
		DynamicMetadata: metadata(MetaReason, string(d.Reason), MetaDecisionID, decisionID),
	}
}

// grpcCode is the status code carried by a denial. Envoy does not map it to
// HTTP (denied_response.status does that); it only has to be non-OK, and
// matches the HTTP status for logs and gRPC clients.
func grpcCode(status int) codes.Code {
	switch {
	case status == http.StatusUnauthorized:
		return codes.Unauthenticated
	case status == http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case status >= 500:
		return codes.Unavailable
	default:
		return codes.PermissionDenied
	}
}

// httpStatusCode converts status to Envoy's enum, using 403 for a code the
// enum does not define (Envoy rejects those).
func httpStatusCode(status int) typev3.StatusCode {
	if _, ok := typev3.StatusCode_name[int32(status)]; !ok {
		return typev3.StatusCode_Forbidden
	}
	return typev3.StatusCode(status)
}

// headerBuf hands out header options from two backing arrays, so an answer
// costs two allocations for its headers instead of two per header.
type headerBuf struct {
	opts []corev3.HeaderValueOption
	vals []corev3.HeaderValue
}

func newHeaderBuf(n int) *headerBuf {
	return &headerBuf{
		opts: make([]corev3.HeaderValueOption, 0, n),
		vals: make([]corev3.HeaderValue, 0, n),
	}
}

// overwrite returns a header that replaces any existing header of that
// name. At most n (from newHeaderBuf) may be taken.
func (b *headerBuf) overwrite(name, value string) *corev3.HeaderValueOption {
	b.vals = append(b.vals, corev3.HeaderValue{Key: name, Value: value})
	b.opts = append(b.opts, corev3.HeaderValueOption{
		Header:       &b.vals[len(b.vals)-1],
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	})
	return &b.opts[len(b.opts)-1]
}

// metadata builds a Struct of string fields from key, value pairs, taking
// its values from two backing arrays.
func metadata(kv ...string) *structpb.Struct {
	n := len(kv) / 2
	fields := make(map[string]*structpb.Value, n)
	vals := make([]structpb.Value, n)
	kinds := make([]structpb.Value_StringValue, n)
	for i := range n {
		kinds[i].StringValue = kv[2*i+1]
		vals[i].Kind = &kinds[i]
		fields[kv[2*i]] = &vals[i]
	}
	return &structpb.Struct{Fields: fields}
}
