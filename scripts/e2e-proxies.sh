#!/usr/bin/env bash
# e2e-proxies.sh proves mcp-authz's HTTP check with real parts: nginx
# (auth_request) and Caddy (forward_auth) from Debian's packages run the
# configurations in examples/nginx and examples/caddy in front of mcp-authz
# and the demo MCP server, and the TypeScript MCP SDK's own OAuth client
# (scripts/node/flow.mjs, a pinned @modelcontextprotocol/sdk) discovers,
# registers, authorizes, exchanges the code, calls tools, refreshes and
# recovers from a revocation through each proxy. mcp-authz is restarted
# between registration and token exchange and again before the refresh.
# Before the flow, mcp-authz's three HTTP checks (/ext_authz/..., /check/nginx,
# /check/forward) are asked directly with both proxy families' headers, to
# prove each reads only its own, and the consent pages (/consents,
# /consents/revoke) are asked through the proxy, which must pass them to
# mcp-authz unchecked.
#
# Usage: scripts/e2e-proxies.sh [nginx] [caddy]     (both by default)
#
# It installs what is missing (nginx-light and caddy with apt-get, the npm
# packages with npm ci), listens on free loopback ports only, keeps its
# files in a temporary directory (kept on failure, or always with
# E2E_KEEP=1) and stops every process it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="/usr/local/go/bin:$PATH"
NODE_DIR="$ROOT/scripts/node"
ADMIN_PASSWORD="e2e-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

proxies=("$@")
if [ ${#proxies[@]} -eq 0 ]; then
  proxies=(nginx caddy)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcp-authz-e2e.XXXXXX")
passed=0 failed=0

# Processes this script started, by role; stopped by cleanup.
declare -A PID=()

log() { printf '%s e2e: %s\n' "$(date +%H:%M:%S)" "$*"; }
die() {
  log "FAIL: $*"
  echo "e2e-proxies: $passed passed, $((failed + 1)) failed"
  exit 1
}

stop() { # stop ROLE [SIGNAL]: signal a started process and wait for it (10 s at most)
  local role=$1 sig=${2:-TERM} pid=${PID[$1]:-}
  [ -n "$pid" ] || return 0
  unset "PID[$role]"
  kill "-$sig" "$pid" 2>/dev/null || return 0
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$role (pid $pid) ignored SIG$sig for 10 s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? role
  for role in "${!PID[@]}"; do
    stop "$role" TERM
  done
  keep_work "$rc" "$failed" "logs and configs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

# --- installing what is missing ------------------------------------------

install_packages() {
  local want=()
  command -v nginx >/dev/null || want+=(nginx-light)
  command -v caddy >/dev/null || want+=(caddy)
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
  command -v curl >/dev/null || want+=(curl)
  apt_install "${want[@]}"
  nginx -V 2>&1 | grep -q -- --with-http_auth_request_module ||
    die "this nginx lacks ngx_http_auth_request_module"
  npm_ci "$NODE_DIR"
}

build() {
  log "building mcp-authz and the demo MCP server"
  mkdir -p "$WORK/bin"
  (cd "$ROOT" && go build -o "$WORK/bin/mcp-authz" ./cmd/mcp-authz &&
    go build -o "$WORK/bin/demo-mcp-server" ./examples/demo-mcp-server) ||
    die "go build failed"
}

# --- helpers ---------------------------------------------------------------

# wait_role URL STATUS SECONDS ROLE: polls until URL answers STATUS, watching
# the process of ROLE.
wait_role() {
  wait_http "$1" "$2" "$3" "$4" "${PID[$4]:-}" "$RUN/$4.log"
}

start_authz() {
  MCP_AUTHZ_ADMIN_PASSWORD=$ADMIN_PASSWORD "$WORK/bin/mcp-authz" serve \
    --config "$RUN/mcp-authz.yaml" --data-dir "$RUN/data" --issuer "$ORIGIN" \
    --http-addr "127.0.0.1:$AUTHZ_PORT" --grpc-addr "127.0.0.1:$GRPC_PORT" \
    --admin-addr "127.0.0.1:$ADMIN_PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" \
    >>"$RUN/mcp-authz.log" 2>&1 &
  PID[mcp-authz]=$!
  wait_role "http://127.0.0.1:$AUTHZ_PORT/readyz" 200 20 mcp-authz
}

restart_authz() { # restart_authz SIGNAL
  local t0=$SECONDS
  stop mcp-authz "$1" 2>/dev/null
  echo "---- restarted after SIG$1" >>"$RUN/mcp-authz.log"
  start_authz
  log "$PROXY: mcp-authz restarted (SIG$1, $((SECONDS - t0))s)"
}

# render SRC DST: the example configuration with this run's ports. Every
# replacement must apply, so a changed example cannot silently go untested.
render() {
  local src=$1 dst=$2 from to
  cp "$src" "$dst"
  shift 2
  while [ $# -gt 0 ]; do
    from=$1 to=$2
    shift 2
    grep -qF -- "$from" "$dst" || die "$src no longer contains '$from'"
    FROM=$from TO=$to perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/g' "$dst"
  done
}

start_nginx() {
  mkdir -p "$RUN/nginx/conf.d" "$RUN/nginx/tmp"
  render "$ROOT/examples/nginx/mcp-authz.conf" "$RUN/nginx/conf.d/mcp-authz.conf" \
    "listen 8080;" "listen 127.0.0.1:$PROXY_PORT;" \
    "server 127.0.0.1:9000;" "server 127.0.0.1:$AUTHZ_PORT;" \
    "server 127.0.0.1:8000;" "server 127.0.0.1:$DEMO_PORT;"
  # The main file around the example, as Debian's /etc/nginx/nginx.conf
  # would include it, with everything under the run directory.
  cat >"$RUN/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx.log info;
events { worker_connections 256; }
http {
    access_log $RUN/nginx.log;
    client_body_temp_path $RUN/nginx/tmp/body;
    proxy_temp_path $RUN/nginx/tmp/proxy;
    fastcgi_temp_path $RUN/nginx/tmp/fastcgi;
    uwsgi_temp_path $RUN/nginx/tmp/uwsgi;
    scgi_temp_path $RUN/nginx/tmp/scgi;
    include $RUN/nginx/conf.d/*.conf;
}
EOF
  nginx -t -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" >>"$RUN/nginx.log" 2>&1 ||
    { cat "$RUN/nginx.log"; die "nginx -t rejected the example configuration"; }
  nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" >>"$RUN/nginx.log" 2>&1 &
  PID[nginx]=$!
}

start_caddy() {
  render "$ROOT/examples/caddy/Caddyfile" "$RUN/Caddyfile" \
    ":8080 {" ":$PROXY_PORT {
	bind 127.0.0.1" \
    "127.0.0.1:9000" "127.0.0.1:$AUTHZ_PORT" \
    "127.0.0.1:8000" "127.0.0.1:$DEMO_PORT"
  HOME="$RUN" XDG_DATA_HOME="$RUN/caddy" XDG_CONFIG_HOME="$RUN/caddy" \
    caddy run --config "$RUN/Caddyfile" --adapter caddyfile >>"$RUN/caddy.log" 2>&1 &
  PID[caddy]=$!
}

# probe_checks: asks mcp-authz's HTTP checks directly, with headers of both
# proxy families naming different paths, and requires that each mount reads
# only its own family's (and Envoy's none). Without a token, a check that
# judged the protected /mcp answers 401, one that judged /other (no
# protected resource) 403, and one that found no original request 500.
probe_checks() {
  local host="127.0.0.1:$PROXY_PORT"
  local nginx_mcp=(-H "X-Original-Method: POST" -H "X-Original-URI: /mcp"
    -H "X-Original-Host: $host")
  local nginx_other=(-H "X-Original-Method: POST" -H "X-Original-URI: /other"
    -H "X-Original-Host: $host")
  local fwd_mcp=(-H "X-Forwarded-Method: POST" -H "X-Forwarded-Uri: /mcp"
    -H "X-Forwarded-Host: $host")
  local fwd_other=(-H "X-Forwarded-Method: POST" -H "X-Forwarded-Uri: /other"
    -H "X-Forwarded-Host: $host")
  probe /ext_authz/mcp 401 -H "Host: $host" "${nginx_other[@]}" "${fwd_other[@]}"
  probe /ext_authz/other 403 -H "Host: $host" "${nginx_mcp[@]}" "${fwd_mcp[@]}"
  probe /check/nginx 401 "${nginx_mcp[@]}" "${fwd_other[@]}"
  probe /check/nginx 403 "${nginx_other[@]}" "${fwd_mcp[@]}"
  probe /check/nginx 500 "${fwd_mcp[@]}"
  probe /check/forward 401 "${fwd_mcp[@]}" "${nginx_other[@]}"
  probe /check/forward 403 "${fwd_other[@]}" "${nginx_mcp[@]}"
  probe /check/forward 500 "${nginx_mcp[@]}"
  log "$PROXY: each HTTP check of mcp-authz reads only its own proxy family's headers"
}

# probe_consents: the user's consent pages go through the proxy to mcp-authz
# without a check: without a token, GET /consents answers mcp-authz's HTML
# sign-in form (200, not the check's 401 or the proxy's 404), and a POST to
# /consents/revoke without a session mcp-authz's HTML refusal (403).
probe_consents() {
  local out="$RUN/consents.html" got type
  got=$(curl -s -o "$out" -w '%{http_code} %{content_type}' --max-time 5 \
    "$ORIGIN/consents" || true)
  read -r got type <<<"$got"
  [ "$got" = 200 ] || die "$PROXY: GET /consents answered $got, want 200"
  case "$type" in text/html*) ;; *) die "$PROXY: GET /consents is $type, want text/html" ;; esac
  grep -q 'name="password"' "$out" || die "$PROXY: GET /consents shows no sign-in form"
  got=$(curl -s -o "$out" -w '%{http_code} %{content_type}' --max-time 5 \
    -X POST -d client_id=x "$ORIGIN/consents/revoke" || true)
  read -r got type <<<"$got"
  [ "$got" = 403 ] || die "$PROXY: POST /consents/revoke answered $got, want 403"
  case "$type" in
    text/html*) ;;
    *) die "$PROXY: POST /consents/revoke is $type, want mcp-authz's text/html" ;;
  esac
  log "$PROXY: the consent pages reach mcp-authz unchecked"
}

# probe PATH STATUS CURL-ARGS...: GET PATH on mcp-authz must answer STATUS.
probe() {
  local path=$1 want=$2 got
  shift 2
  got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" \
    "http://127.0.0.1:$AUTHZ_PORT$path" || true)
  [ "$got" = "$want" ] || die "$PROXY: GET $path $* answered $got, want $want"
}

# run_flow: runs flow.mjs and answers its control lines; sets FLOW_RC.
run_flow() {
  local line auth_method=none out in
  [ "$PROXY" = caddy ] && auth_method=client_secret_post
  mkfifo "$RUN/to-flow" "$RUN/from-flow"
  node "$NODE_DIR/flow.mjs" --server-url "$ORIGIN/mcp" --username admin \
    --password "$ADMIN_PASSWORD" --auth-method "$auth_method" --label "$PROXY" \
    --required-scope mcp:tools --other-scope mcp:admin \
    --timeout 150 <"$RUN/to-flow" >"$RUN/from-flow" 2>&1 &
  PID[flow]=$!
  exec {in}>"$RUN/to-flow" {out}<"$RUN/from-flow"
  local rc=0
  while true; do
    IFS= read -r -t 160 line <&"$out" || { rc=$?; break; }
    case "$line" in
      "@@ restart-kill") restart_authz KILL && echo ok >&"$in" ;;
      "@@ restart-term") restart_authz TERM && echo ok >&"$in" ;;
      "@@ stop") stop mcp-authz && log "$PROXY: mcp-authz stopped" && echo ok >&"$in" ;;
      "@@ start") start_authz && log "$PROXY: mcp-authz started" && echo ok >&"$in" ;;
      "@@ revoke "*) revoke "${line#@@ revoke }" >&"$in" ;;
      "@@ "*) echo "fail: unknown action" >&"$in" ;;
      *) printf '  %s\n' "$line" ;;
    esac
  done
  if [ "$rc" -gt 128 ]; then
    log "$PROXY: flow.mjs printed nothing for 160 s; stopping it"
    stop flow KILL
    FLOW_RC=124
  else
    # End of output: the program exited.
    FLOW_RC=0
    wait "${PID[flow]}" || FLOW_RC=$?
    unset "PID[flow]"
  fi
  exec {out}<&- {in}>&-
}

# revoke ID: revokes a client with the CLI and answers flow.mjs.
revoke() {
  if "$WORK/bin/mcp-authz" clients --data-dir "$RUN/data" revoke "$1" \
    >>"$RUN/clients.log" 2>&1; then
    log "$PROXY: revoked client $1 with mcp-authz clients revoke" >&2
    echo ok
  else
    echo "fail: mcp-authz clients revoke exited non-zero (see $RUN/clients.log)"
  fi
}

# run_proxy NAME: one complete run behind one proxy; sets FLOW_RC.
run_proxy() {
  PROXY=$1
  RUN="$WORK/$PROXY"
  mkdir -p "$RUN"
  PROXY_PORT=$(free_port) AUTHZ_PORT=$(free_port) GRPC_PORT=$(free_port)
  ADMIN_PORT=$(free_port) DEMO_PORT=$(free_port) METRICS_PORT=$(free_port)
  ORIGIN="http://127.0.0.1:$PROXY_PORT"
  local t0=$SECONDS
  log "$PROXY: proxy $ORIGIN, mcp-authz :$AUTHZ_PORT, demo MCP server :$DEMO_PORT"

  # The resource requires mcp:tools and offers mcp:admin too, so that a
  # token for mcp:admin alone shows the 403 path through the proxy.
  cat >"$RUN/mcp-authz.yaml" <<EOF
resources:
  - url: $ORIGIN/mcp
    scopes: [mcp:tools, mcp:admin]
    required_scopes: [mcp:tools]
EOF

  "$WORK/bin/demo-mcp-server" --addr "127.0.0.1:$DEMO_PORT" >>"$RUN/demo-mcp-server.log" 2>&1 &
  PID[demo-mcp-server]=$!
  start_authz
  wait_role "http://127.0.0.1:$DEMO_PORT/healthz" 204 20 demo-mcp-server
  "start_$PROXY"
  wait_role "$ORIGIN/.well-known/oauth-protected-resource/mcp" 200 20 "$PROXY"
  probe_checks
  probe_consents

  run_flow
  # Caddy's graceful stop (SIGTERM) waits on the finished SSE streams for
  # many seconds; SIGQUIT ends it at once. nginx's SIGTERM is already fast.
  if [ "$PROXY" = caddy ]; then stop caddy QUIT; else stop "$PROXY"; fi
  stop mcp-authz
  stop demo-mcp-server
  if [ "$FLOW_RC" -eq 0 ]; then
    log "$PROXY: passed in $((SECONDS - t0))s"
  else
    log "$PROXY: FAILED (flow exit $FLOW_RC); logs in $RUN"
    tail -n 20 "$RUN/mcp-authz.log" "$RUN/$PROXY.log" 2>/dev/null | sed 's/^/  | /'
  fi
}

main() {
  local t0=$SECONDS p
  for p in "${proxies[@]}"; do
    case "$p" in nginx | caddy) ;; *) die "unknown proxy $p (want nginx or caddy)" ;; esac
  done
  install_packages
  build
  log "setup took $((SECONDS - t0))s"
  for p in "${proxies[@]}"; do
    run_proxy "$p"
    if [ "$FLOW_RC" -eq 0 ]; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
  log "total $((SECONDS - t0))s"
  echo "e2e-proxies: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

main
