package oauth

import "github.com/mcp-authz/mcp-authz/authz/ratelimit"

var offLimit = ratelimit.Limit{Off: true}
