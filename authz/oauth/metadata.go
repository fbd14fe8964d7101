package oauth

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mcp-authz/mcp-authz/authz"
)

// asMetadata is the RFC 8414 authorization server metadata document.
type asMetadata struct {
	Issuer                        string   `json:"issuer"`
	AuthorizationEndpoint         string   `json:"authorization_endpoint"`
	TokenEndpoint                 string   `json:"token_endpoint"`
	RegistrationEndpoint          string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint            string   `json:"revocation_endpoint"`
	IntrospectionEndpoint         string   `json:"introspection_endpoint"`
	JWKSURI                       string   `json:"jwks_uri"`
	ScopesSupported               []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported        []string `json:"response_types_supported"`
	ResponseModesSupported        []string `json:"response_modes_supported"`
	GrantTypesSupported           []string `json:"grant_types_supported"`
	CodeChallengeMethodsSupported []string `json:"code_challenge_methods_supported"`
	TokenAuthMethods              []string `json:"token_endpoint_auth_methods_supported"`
	RevocationAuthMethods         []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionAuthMethods      []string `json:"introspection_endpoint_auth_methods_supported"`
	IssParameterSupported         bool     `json:"authorization_response_iss_parameter_supported"`
	CIMDSupported                 bool     `json:"client_id_metadata_document_supported,omitempty"`
	// The two OpenID Provider fields that OpenID discovery requires; only the
	// openid-configuration document carries them. No ID tokens are issued.
	SubjectTypesSupported []string `json:"subject_types_supported,omitempty"`
	IDTokenAlgs           []string `json:"id_token_signing_alg_values_supported,omitempty"`
}

// Supported protocol values, also used for validation.
var (
	supportedGrantTypes  = []string{grantAuthorizationCode, grantRefreshToken}
	supportedAuthMethods = []string{authNone, authSecretPost, authSecretBasic}
)

// buildMetadata renders the RFC 8414 and OpenID discovery documents once.
func (s *Server) buildMetadata() (oauthDoc, oidcDoc []byte, err error) {
	var scopes []string
	for _, r := range s.cfg.Resources {
		for _, sc := range r.Scopes {
			if !slices.Contains(scopes, sc) {
				scopes = append(scopes, sc)
			}
		}
	}
	m := asMetadata{
		Issuer:                        s.issuer,
		AuthorizationEndpoint:         s.base + pathAuthorize,
		TokenEndpoint:                 s.base + pathToken,
		RegistrationEndpoint:          s.registrationEndpoint(),
		RevocationEndpoint:            s.base + pathRevoke,
		IntrospectionEndpoint:         s.base + pathIntrospect,
		JWKSURI:                       s.base + pathJWKS,
		ScopesSupported:               scopes,
		ResponseTypesSupported:        []string{"code"},
		ResponseModesSupported:        []string{"query"},
		GrantTypesSupported:           supportedGrantTypes,
		CodeChallengeMethodsSupported: []string{"S256"},
		TokenAuthMethods:              supportedAuthMethods,
		RevocationAuthMethods:         supportedAuthMethods,
		IntrospectionAuthMethods:      supportedAuthMethods,
		IssParameterSupported:         true,
		CIMDSupported:                 s.cimdEnabled(),
	}
	if oauthDoc, err = json.Marshal(m); err != nil {
		return nil, nil, fmt.Errorf("encoding metadata: %w", err)
	}
	m.SubjectTypesSupported = []string{"public"}
	m.IDTokenAlgs = []string{"ES256"}
	if oidcDoc, err = json.Marshal(m); err != nil {
		return nil, nil, fmt.Errorf("encoding metadata: %w", err)
	}
	return oauthDoc, oidcDoc, nil
}

// metadataMaxAge is how long clients may cache metadata documents.
const metadataMaxAge = "public, max-age=300"

func (s *Server) metadataHandler(doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		writeDocument(w, r, doc, "application/json")
	}
}

func writeDocument(w http.ResponseWriter, r *http.Request, doc []byte, ctype string) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", metadataMaxAge)
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(doc)
	}
}

func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	doc, err := s.keys.JWKS()
	if err != nil {
		s.log.Error("jwks unavailable", "err", err)
		writeOAuthError(w, newError(http.StatusServiceUnavailable, errTemporarilyUnavailable,
			"signing keys unavailable"))
		return
	}
	writeDocument(w, r, doc, "application/json")
}

// resourceMetadata is the RFC 9728 protected resource metadata document.
type resourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported,omitempty"`
	BearerMethods        []string `json:"bearer_methods_supported"`
}

// handleResourceMetadata serves /.well-known/oauth-protected-resource<path>.
func (s *Server) handleResourceMetadata(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	suffix := strings.TrimPrefix(r.URL.EscapedPath(), pathPRM)
	res := s.resourceForMetadata(suffix, r.Host)
	if res == nil {
		writeError(w, http.StatusNotFound, "not_found", "no protected resource at this path")
		return
	}
	doc, err := json.Marshal(resourceMetadata{
		Resource:             res.URL,
		AuthorizationServers: []string{s.issuer},
		ScopesSupported:      res.Scopes,
		BearerMethods:        []string{"header"},
	})
	if err != nil {
		writeError(w, http.StatusInternalServerError, errServerError, "internal error")
		return
	}
	writeDocument(w, r, doc, "application/json")
}

// resourceForMetadata picks the resource whose metadata lives at the
// well-known path with suffix (the resource's path). At the root it is the
// origin-only resource, else the only resource (or the only one on the
// request's host). Resources sharing a path on different hosts are told
// apart by the request's Host.
func (s *Server) resourceForMetadata(suffix, host string) *authz.Resource {
	var cands []*authz.Resource
	for i := range s.cfg.Resources {
		if resourcePath(s.cfg.Resources[i].URL) == strings.TrimSuffix(suffix, "/") {
			cands = append(cands, &s.cfg.Resources[i])
		}
	}
	if len(cands) == 0 && strings.TrimSuffix(suffix, "/") == "" {
		for i := range s.cfg.Resources {
			cands = append(cands, &s.cfg.Resources[i])
		}
	}
	if len(cands) == 1 {
		return cands[0]
	}
	var onHost []*authz.Resource
	for _, c := range cands {
		if sameHost(c.URL, host) {
			onHost = append(onHost, c)
		}
	}
	if len(onHost) == 1 {
		return onHost[0]
	}
	return nil
}

// resourcePath is the escaped path of a resource URL without a trailing slash.
func resourcePath(resourceURL string) string {
	u, err := url.Parse(resourceURL)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.EscapedPath(), "/")
}

// sameHost reports whether the request Host names the resource's host,
// ignoring case and a default port.
func sameHost(resourceURL, host string) bool {
	u, err := url.Parse(resourceURL)
	if err != nil {
		return false
	}
	return normalHost(u.Scheme, u.Host) == normalHost(u.Scheme, host)
}

func normalHost(scheme, hostport string) string {
	h, p, err := net.SplitHostPort(hostport)
	if err != nil {
		h, p = strings.Trim(hostport, "[]"), ""
	}
	if (scheme == "https" && p == "443") || (scheme == "http" && p == "80") {
		p = ""
	}
	return strings.ToLower(h) + ":" + p
}

// allowMethods answers 405 unless r uses one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, errInvalidRequest,
		"method "+r.Method+" not allowed")
	return false
}

// CORS settings for the endpoints browsers call directly. No credentials are
// ever allowed, so the wildcard origin is safe.
const (
	corsMethods = "GET, POST, OPTIONS"
	corsHeaders = "Authorization, Content-Type, MCP-Protocol-Version"
)

// cors wraps h with CORS headers and answers preflight requests.
func cors(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Access-Control-Allow-Origin", "*")
		hd.Set("Access-Control-Expose-Headers", "WWW-Authenticate")
		if r.Method == http.MethodOptions {
			hd.Set("Access-Control-Allow-Methods", corsMethods)
			hd.Set("Access-Control-Allow-Headers", corsHeaders)
			hd.Set("Access-Control-Max-Age", "86400")
			hd.Set("Allow", corsMethods)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h(w, r)
	}
}
