package envoy

import (
	"net"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/mcp-authz/mcp-authz/authz"
)

// startGRPC serves Register(checker) on a loopback port and returns a
// client connection to it; both are closed when the test ends.
func startGRPC(t testing.TB, checker Checker, opts ...Options) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening on loopback: %v", err)
	}
	s := grpc.NewServer()
	Register(s, checker, discard, opts...)
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(s.Stop)

	conn, err := grpc.NewClient("passthrough:///"+ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dialing %s: %v", ln.Addr(), err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestLoopbackHealth(t *testing.T) {
	t.Parallel()
	conn := startGRPC(t, &fakeChecker{decision: allowDecision})
	hc := healthpb.NewHealthClient(conn)
	for _, service := range []string{"", "envoy.service.auth.v3.Authorization"} {
		t.Run("service="+service, func(t *testing.T) {
			resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
			if err != nil {
				t.Fatalf("health Check(%q): %v", service, err)
			}
			if got := resp.GetStatus(); got != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("health Check(%q) = %v, want SERVING", service, got)
			}
		})
	}
	t.Run("unknown service", func(t *testing.T) {
		_, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "nope"})
		if status.Code(err) != codes.NotFound {
			t.Errorf("health Check(nope) error = %v, want NotFound", err)
		}
	})
}

func TestLoopbackCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		decision   *authz.Decision
		wantCode   codes.Code
		wantStatus int32 // denied_response status; 0 for an allow
	}{
		{"allow", allowDecision, codes.OK, 0},
		{"deny 401", denyNoToken, codes.Unauthenticated, 401},
		{"deny 403", denyScope, codes.PermissionDenied, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &reasonRecorder{}
			conn := startGRPC(t, &fakeChecker{decision: tt.decision}, Options{Observe: rec.observe})
			client := authv3.NewAuthorizationClient(conn)

			resp, err := client.Check(t.Context(), envoyCheck(nil))
			if err != nil {
				t.Fatalf("Check RPC: %v", err)
			}
			assertWellFormed(t, resp)
			if got := codes.Code(resp.GetStatus().GetCode()); got != tt.wantCode {
				t.Errorf("status code = %v, want %v", got, tt.wantCode)
			}
			if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tt.wantStatus {
				t.Errorf("denied_response status = %d, want %d", got, tt.wantStatus)
			}
			if diff := cmp.Diff([]authz.Reason{tt.decision.Reason}, rec.reasons()); diff != "" {
				t.Errorf("observed reasons (-want +got):\n%s", diff)
			}
		})
	}
}
