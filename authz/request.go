package authz

// Request is one authorization question: may this HTTP request reach the MCP
// server? Translators (Envoy gRPC, HTTP check) fill it from their wire shapes.
type Request struct {
	// DecisionID identifies the decision in logs and answers (Envoy's request
	// id when there is one).
	DecisionID string
	Method     string
	Scheme     string
	// Host is the :authority or Host header as the client sent it.
	Host string
	// Path is the request path with its query string, undecoded.
	Path string
	// Authorization holds every Authorization header value, in order. More
	// than one value, or one value holding a comma-joined pair, is refused.
	Authorization []string
	// Header returns the value of a lower-cased request header, or "". A
	// header sent more than once must be returned with its values joined by
	// commas, as Envoy's headers map does, never one of them alone: the
	// decision refuses or distrusts a repeated Mcp-Method or Mcp-Name, which
	// a server might read differently. It may be nil.
	Header func(name string) string
	// Body is the request body when the proxy sends it; BodyPartial is true
	// when the proxy cut it short.
	Body        []byte
	BodyPartial bool
	// ContextExtensions are per-route values from Envoy; the key "resource"
	// names the protected resource directly.
	ContextExtensions map[string]string
}

// Reason is a stable code for the outcome of a decision. It appears in logs,
// in metrics as a label and in deny bodies.
type Reason string

// The reasons a decision can give.
const (
	ReasonOK                Reason = "ok"
	ReasonNoToken           Reason = "no_token"
	ReasonMalformed         Reason = "malformed_token"
	ReasonMultipleTokens    Reason = "multiple_tokens"
	ReasonBadSignature      Reason = "bad_signature"
	ReasonWrongType         Reason = "wrong_token_type"
	ReasonExpired           Reason = "expired"
	ReasonNotYetValid       Reason = "not_yet_valid"
	ReasonWrongIssuer       Reason = "wrong_issuer"
	ReasonWrongAudience     Reason = "wrong_audience"
	ReasonUnknownClient     Reason = "unknown_client"
	ReasonRevokedClient     Reason = "revoked_client"
	ReasonRevokedToken      Reason = "revoked_token"
	ReasonUnknownResource   Reason = "unknown_resource"
	ReasonInsufficientScope Reason = "insufficient_scope"
	ReasonDeadline          Reason = "deadline_exceeded"
	// ReasonMCPHeaderMismatch denies a request whose Mcp-Method or Mcp-Name
	// header is malformed or disagrees with its JSON-RPC body.
	ReasonMCPHeaderMismatch Reason = "mcp_header_mismatch"
	// ReasonCORSPreflight allows a browser's CORS preflight (an OPTIONS
	// request without credentials) to reach the server, without identity.
	ReasonCORSPreflight Reason = "cors_preflight"
)

// Decision is the answer to a Request.
type Decision struct {
	Allow  bool
	Reason Reason
	// Status is the HTTP status to answer a denied request with (401, 403).
	Status int
	// WWWAuthenticate is the challenge for a denied request.
	WWWAuthenticate string
	// Body is a small JSON body for a denied request.
	Body []byte
	// Identity of an allowed request, for the upstream headers.
	ClientID string
	Subject  string
	Scope    string
	// Resource is the canonical URL of the protected resource, when found.
	Resource string
}

// Upstream identity headers set on allowed requests.
const (
	HeaderClientID = "x-mcp-client-id"
	HeaderSubject  = "x-mcp-subject"
	HeaderScope    = "x-mcp-scope"
)
