#!/usr/bin/env bash
# e2e-browser.sh tests mcp-authz's login and consent pages in a real browser:
# Debian's Chromium, headless, driven by playwright-core
# (scripts/browser/browser.mjs, pinned in scripts/browser/package-lock.json).
# It builds mcp-authz, starts it on free loopback ports with a fresh data
# directory, registers a public client with curl, and lets browser.mjs sign
# in (a wrong password first), consent, catch the redirect and exchange the
# code with PKCE; then frame the pages from another loopback origin and post
# forged consent and login forms from it. Finally it checks that no password,
# code or token reached mcp-authz's log.
#
# Usage: scripts/e2e-browser.sh
#
# It installs what is missing (chromium with apt-get, playwright-core with
# npm ci), keeps its files in a temporary directory (kept on failure, or
# always with E2E_KEEP=1; the screenshots are there) and stops every process
# it started. Chromium reaches nothing but loopback (see browser.mjs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
NODE_DIR="$ROOT/scripts/browser"
CHROMIUM=/usr/bin/chromium
ADMIN_PASSWORD="e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
SCOPES="mcp:read mcp:write"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcp-authz-browser.XXXXXX")
passed=0 failed=0
AUTHZ_PID="" NODE_PID=""

log() { printf '%s e2e-browser: %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
  log "FAIL: $*"
  echo "e2e-browser: $passed passed, $((failed + 1)) failed"
  exit 1
}

# stop PID: SIGTERM a started process, SIGKILL it after 10 s, reap it.
stop() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? pid
  stop "$NODE_PID"
  # Chromium runs in a process group of its own; browser.mjs wrote its pid.
  # Normally it is gone already; if browser.mjs died first, end the group.
  if [ -s "$WORK/chromium.pid" ]; then
    pid=$(cat "$WORK/chromium.pid")
    if kill -0 "$pid" 2>/dev/null &&
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$WORK/chromium-profile"; then
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  stop "$AUTHZ_PID"
  keep_work "$rc" "$failed" "logs and screenshots"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# --- installing what is missing --------------------------------------------

install_packages() {
  local want=()
  [ -x "$CHROMIUM" ] || want+=(chromium)
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
  command -v curl >/dev/null || want+=(curl)
  apt_install "${want[@]}"
  [ -x "$CHROMIUM" ] || die "$CHROMIUM is missing after the install"
  log "$("$CHROMIUM" --version 2>/dev/null || echo 'chromium: version unknown')"
  npm_ci "$NODE_DIR"
}

# --- helpers ------------------------------------------------------------------

# json_field FIELD: prints FIELD of the JSON object on standard input.
json_field() {
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const v = JSON.parse(s)[process.argv[1]];
    if (typeof v !== "string" || !v) process.exit(1);
    console.log(v); });' "$1"
}

# --- the run ------------------------------------------------------------------

main() {
  local t0=$SECONDS t1
  install_packages
  log "building mcp-authz"
  (cd "$ROOT" && go build -o "$WORK/mcp-authz" ./cmd/mcp-authz) || die "go build failed"
  log "setup took $((SECONDS - t0))s"
  t1=$SECONDS

  local port grpc admin metrics resource_port callback_port
  port=$(free_port) grpc=$(free_port) admin=$(free_port) metrics=$(free_port)
  resource_port=$(free_port) callback_port=$(free_port)
  local issuer="http://127.0.0.1:$port"
  local resource="http://127.0.0.1:$resource_port/mcp"
  # Nothing listens on the redirect URI's port: browser.mjs answers the
  # browser's visit there itself.
  local redirect_uri="http://127.0.0.1:$callback_port/callback"

  # The resource offers two scopes, so the consent page has a list to show.
  cat >"$WORK/mcp-authz.yaml" <<EOF
resources:
  - url: $resource
    scopes: [mcp:read, mcp:write]
    required_scopes: [mcp:read]
EOF
  MCP_AUTHZ_ADMIN_PASSWORD=$ADMIN_PASSWORD "$WORK/mcp-authz" serve \
    --config "$WORK/mcp-authz.yaml" --data-dir "$WORK/data" --issuer "$issuer" \
    --http-addr "127.0.0.1:$port" --grpc-addr "127.0.0.1:$grpc" \
    --admin-addr "127.0.0.1:$admin" --metrics-addr "127.0.0.1:$metrics" \
    >"$WORK/mcp-authz.log" 2>&1 &
  AUTHZ_PID=$!
  wait_http "$issuer/readyz" 200 20 mcp-authz "$AUTHZ_PID" "$WORK/mcp-authz.log"
  log "mcp-authz ready at $issuer (resource $resource)"

  # The client picks its own name, with markup in it that the pages must
  # show as text.
  local name='Browser E2E <b>Client</b> & "Co"' reg client_id
  reg=$(NAME=$name REDIRECT=$redirect_uri node -e 'console.log(JSON.stringify({
      client_name: process.env.NAME, redirect_uris: [process.env.REDIRECT],
      token_endpoint_auth_method: "none", grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"], scope: "mcp:read mcp:write" }))')
  curl -s --max-time 10 -o "$WORK/register.json" -w '%{http_code}' \
    -H 'Content-Type: application/json' -d "$reg" "$issuer/register" >"$WORK/register.status" ||
    die "POST /register failed"
  [ "$(cat "$WORK/register.status")" = 201 ] ||
    die "POST /register answered $(cat "$WORK/register.status"): $(cat "$WORK/register.json")"
  client_id=$(json_field client_id <"$WORK/register.json") || die "no client_id in the answer"
  log "registered public client $client_id (redirect $redirect_uri)"

  local rc=0
  MCP_AUTHZ_PASSWORD=$ADMIN_PASSWORD timeout -k 5 120 node "$NODE_DIR/browser.mjs" \
    --issuer "$issuer" --client-id "$client_id" --client-name "$name" \
    --redirect-uri "$redirect_uri" --resource "$resource" --scopes "$SCOPES" \
    --out "$WORK" --chromium "$CHROMIUM" &
  NODE_PID=$!
  wait "$NODE_PID" || rc=$?
  NODE_PID=""
  if [ -s "$WORK/result" ]; then
    read -r passed failed <"$WORK/result"
  fi
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
    [ "$rc" -eq 124 ] && log "browser.mjs ran out of its 120 s"
    log "browser.mjs exited $rc before it counted (see above)"
    failed=$((failed + 1))
  fi

  # No password, code or token that the browser saw may be in the log.
  if [ -s "$WORK/secrets" ]; then
    if grep -qF -f "$WORK/secrets" "$WORK/mcp-authz.log"; then
      failed=$((failed + 1))
      log "not ok - mcp-authz's log holds a password, code or token"
    else
      passed=$((passed + 1))
      log "ok - no password, code or token in mcp-authz's log"
    fi
  fi

  stop "$AUTHZ_PID"
  AUTHZ_PID=""
  if [ "$failed" -ne 0 ]; then
    tail -n 20 "$WORK/mcp-authz.log" | sed 's/^/  | /'
  fi
  log "browser run took $((SECONDS - t1))s, total $((SECONDS - t0))s"
  echo "e2e-browser: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

main
