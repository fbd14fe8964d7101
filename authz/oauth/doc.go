// Package oauth is mcp-authz's OAuth 2.1 authorization server: discovery
// metadata (RFC 8414, OpenID discovery, RFC 9728 protected resource
// metadata), JWKS, dynamic client registration (RFC 7591) and its
// management (RFC 7592), the authorization endpoint with its login and
// consent pages, the token endpoint with PKCE (RFC 7636), resource
// indicators (RFC 8707), refresh token rotation, and token revocation
// (RFC 7009) and introspection (RFC 7662).
//
// Around them: a registration policy (policy.go: open, token or closed;
// redirect allow and deny lists; size limits), rate limits per client
// address with a login lockout per user and address (ratelimit.go, on
// package ratelimit), and a page where users withdraw the consents they
// gave (consent.go). Rate limit and lockout state is kept per process.
//
// Clients come from four sources, resolved in this order by every endpoint
// and by the ext_authz decision (clients.go, Server.ClientKnown):
// pre-registered clients from the configuration (staticclients.go; never
// written to the registry, a bcrypt-hashed secret, optional allowed
// scopes; they win over a dynamic registration with the same id); Client
// ID Metadata Documents, for an https client_id, fetched and cached by
// package cimd; dynamic registrations in the registry; and, only in
// development mode on a loopback issuer, any other plausible client id as
// a public client (devmode.go raises every log line about one to WARN
// with dev_mode=true).
//
// Every client, code, refresh token, consent and user lives in the registry,
// so registrations and grants survive restarts. Only in-flight logins are
// kept in process memory: the session of a signed-in browser and the
// consent pages it was shown (flows.go). A browser that has not signed in
// costs nothing: the login page carries the authorization request in its
// form, bound to the browser by an HMAC under a per-process key
// (browser.go). A restart, or a load balancer that sends the two halves of
// a login to different instances, makes the user start the login again. A
// form key shared through the registry, and the consent page's request
// signed into its form like the login page's, would remove that limit.
//
// Decisions that clients depend on, and the choice made for each:
//
//   - Registration without token_endpoint_auth_method gets
//     client_secret_basic and a secret (RFC 7591 §2). Grant and response
//     types that are not supported are dropped from the registration (the
//     answer shows what was registered); a registration that is left without
//     authorization_code or the code response type is refused.
//   - The requested scope defaults to the client's registered scope (limited
//     to the resource's scopes), then to the resource's required scopes.
//     offline_access is accepted and dropped: every client registered with
//     the refresh_token grant gets refresh tokens.
//   - A state value longer than 2048 bytes or holding control characters is
//     refused with invalid_request sent to the (verified) redirect URI,
//     without echoing the state.
//   - Refresh tokens rotate on every use and slide their expiry; presenting
//     a rotated one revokes the whole grant.
package oauth
