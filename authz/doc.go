// Package authz decides whether a request may reach an MCP server, and mints
// and verifies the access tokens that decision relies on.
//
// The pieces, each in its own file:
//
//   - Config (config.go): the issuer, the protected resources and token
//     lifetimes, with WithDefaults to normalise and Validate to check it, and
//     ResourceMetadataURL for RFC 9728 discovery.
//   - Keys (keys.go): ES256 signing keys kept in the registry, created on
//     first start, rotated with an overlap and published as a JWKS. Readers
//     see an immutable key set through an atomic pointer.
//   - Tokens (token.go): RFC 9068 JWT access tokens ("typ" at+jwt), minted
//     with a jti and a grant id so one token or a whole grant can be
//     revoked, and verified strictly: ES256 only, a known kid, the exact
//     issuer, exp and nbf with a small leeway.
//   - Decider (decision.go): the ext_authz decision. It finds the resource
//     of a request (resource.go), extracts exactly one bearer token
//     (bearer.go), verifies it through a cache of verified tokens
//     (cache.go), and checks the audience, the client, revocations and
//     scopes against the registry's in-memory index on every call. It does
//     no I/O and answers every request with a Decision carrying a stable
//     Reason, never an error.
//   - Scope rules (rules.go, mcp.go, mcpjson.go): the scopes an MCP message
//     needs, learned from the Mcp-Method and Mcp-Name headers and the
//     JSON-RPC body, described below.
//
// # Scope rules
//
// Every request to a resource needs its RequiredScopes. Rules add scopes
// for some MCP messages, by JSON-RPC method and by the tool, prompt or
// resource the message addresses:
//
//	resources:
//	  - url: https://mcp.example.com/mcp
//	    scopes: [mcp:read, mcp:write, mcp:admin]
//	    required_scopes: [mcp:read]
//	    rules:
//	      - {method: tools/call, tool: delete_everything, scopes: [mcp:admin]}
//	      - {method: tools/call, scopes: [mcp:write]}
//	      - {method: resources/read, tool: "file:///etc/secrets", scopes: [mcp:admin]}
//
// With this configuration tools/list needs mcp:read; calling any tool needs
// mcp:read and mcp:write; calling delete_everything needs mcp:read,
// mcp:write and mcp:admin, because every matching rule applies (order does
// not matter, and a rule can only add scopes). A rule's method "*" matches
// every JSON-RPC message; an empty tool matches any name. Names are compared
// exactly. The scopes of rules are published in the resource's metadata
// (scopes_supported) like the others.
//
// A token that lacks a needed scope is answered 403 insufficient_scope
// naming every scope the request needs, not only the missing ones, so a
// client can ask for exactly that set (MCP clients add it to what they
// hold). A request without a token is challenged with the scopes its
// message needs.
//
// Where the message comes from:
//
//   - GET, HEAD and DELETE (the server's event stream, the end of a session)
//     carry no message: they need the RequiredScopes only, unless they come
//     with a body or an Mcp-Method or Mcp-Name header, which are then read
//     as for POST. Every other method is read like POST.
//   - When the proxy sends the body (Envoy's with_request_body), the
//     JSON-RPC body is read: its method, and params.name (tools/call,
//     prompts/get and any other method) or params.uri (resources/read,
//     resources/subscribe, resources/unsubscribe). The Mcp-Method and
//     Mcp-Name headers (MCP 2026-07-28; Mcp-Name may be "=?base64?...?=")
//     must then agree with the body: a header that is malformed or
//     disagrees is answered 400 invalid_request with the reason
//     mcp_header_mismatch, on every resource, with or without rules. A
//     header on a batch is a mismatch too.
//   - Without a body, the headers are trusted. The MCP server must then
//     refuse headers that disagree with the body, as MCP 2026-07-28 servers
//     do; an older server does not, and a client could name a harmless tool
//     in the header and call another in the body. Send the body to the
//     decision (with_request_body, max_request_bytes large enough for the
//     largest tool call) in front of such servers.
//   - A batch (JSON-RPC arrays, allowed before MCP 2025-06-18) needs what
//     all its messages need together, up to 64 messages.
//
// What cannot be learned needs what it could be (fail closed): a POST with
// no Mcp-Method header and no body, or whose body is cut short by the proxy,
// is larger than MaxMCPBody, is not strict JSON, is nested deeper than 64
// levels, or could be read differently by different JSON decoders (a
// duplicate "method", "params", "name" or "uri", or one spelt in another
// case, which case-insensitive decoders such as Go's encoding/json accept)
// needs the scopes of every rule. A tools/call, prompts/get or resources/*
// message whose name is missing, or named by a header holding a comma (two
// Mcp-Name headers joined by a proxy), needs the scopes of every rule of its
// method. A JSON-RPC response (no method) matches "*" rules only. On a
// resource without rules none of this costs anything: the body is read only
// to compare it with headers that are present.
//
// # CORS preflight
//
// Browsers send an OPTIONS request with Origin and
// Access-Control-Request-Method, and never with credentials, before a
// cross-origin POST. Such a request is allowed with the reason
// cors_preflight and no identity, so that the MCP server (or a CORS filter
// behind this one) answers it and browser clients such as MCP Inspector
// can reach the resource. An OPTIONS request that carries Authorization is
// decided like any other.
package authz
