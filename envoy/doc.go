// Package envoy connects proxies to the authz decision. It translates Envoy's
// ext_authz v3 CheckRequest into an authz.Request and the resulting
// authz.Decision back into a CheckResponse (AuthorizationServer, a gRPC
// service), and answers plain HTTP authorization subrequests from Envoy's
// http_service mode (NewHTTPHandler) and from nginx auth_request, Caddy
// forward_auth and Traefik forwardAuth (NewProxyCheckHandler), each on its
// own path so each reads only its own proxy's headers (MountHTTPChecks).
//
// The package decides nothing itself: every answer comes from a Checker. The
// only answers it builds on its own are for requests it cannot hand to the
// Checker at all (an expired deadline, a Checker that panicked or returned
// nil); those are denials with a 5xx status so the proxy treats them as an
// outage, not as a verdict on the token.
//
// Two rules hold for every answer:
//
//   - A request is allowed only by an allowing Decision. Every denial carries a
//     non-OK gRPC status (never an unset one, which Envoy reads as OK), and a
//     bad token is never reported as an RPC error, which Envoy's
//     failure_mode_allow could turn into an allow.
//   - On allow, the identity headers x-mcp-client-id, x-mcp-subject and
//     x-mcp-scope replace whatever the client sent (an empty value removes
//     the header), and the Authorization header is removed so the token never
//     reaches the MCP server.
//
// The Envoy configurations that use this service live in envoy/config:
// front-proxy.yaml (docker-compose) and sidecar.yaml (a Kubernetes pod). The
// package's tests parse every Envoy bootstrap in the repository into Envoy's
// own protos and check them.
package envoy
