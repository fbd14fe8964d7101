# lib.sh holds what the end-to-end scripts share. Source it after defining
# WORK (a scratch directory), log MESSAGE and die MESSAGE.

# apt_install PACKAGE...: installs the Debian packages given (with sudo when
# not root), keeping apt-get's output in $WORK/apt.log.
apt_install() {
  [ $# -gt 0 ] || return 0
  log "installing $* from Debian's packages"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 ||
    { cat "$WORK/apt.log"; die "apt-get install $* failed"; }
}

# npm_ci DIR: runs npm ci in DIR unless its node_modules already matches its
# package-lock.json.
npm_ci() {
  local dir=$1
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.e2e-lock" 2>/dev/null; then
    log "npm ci in ${dir#"$ROOT"/}"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    cp "$dir/package-lock.json" "$dir/node_modules/.e2e-lock"
  fi
}

# free_port prints a TCP port free on 127.0.0.1.
free_port() {
  node -e 'const s = require("net").createServer();
    s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

# keep_work RC FAILED WHAT: keeps $WORK, saying it holds WHAT, when the run
# failed (RC or FAILED not 0) or E2E_KEEP=1; removes it otherwise.
keep_work() {
  if [ "$1" -ne 0 ] || [ "$2" -ne 0 ] || [ "${E2E_KEEP:-0}" = 1 ]; then
    log "$3 kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}

# wait_http URL STATUS SECONDS NAME PID LOG: polls until URL answers STATUS,
# failing (with the tail of LOG) if the process PID, called NAME, exits
# first or the time runs out. PID may be empty when nothing is to be watched.
wait_http() {
  local url=$1 want=$2 secs=$3 name=$4 pid=$5 logf=$6 got="" i
  for ((i = 0; i < secs * 10; i++)); do
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
    [ "$got" = "$want" ] && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$logf" >&2 || true
      die "$name exited while waiting for $url"
    fi
    sleep 0.1
  done
  tail -n 30 "$logf" >&2 || true
  die "$url did not answer $want within ${secs}s (last: $got)"
}
