#!/usr/bin/env bash
# Bounded HTTP load against a feature server's POST /get-online-features, on
# loopback only. Prints one line of JSON (see bench/wrk/post.lua):
#   {"requests": N, "duration_s": x, "rps": x, "p50_ms": x, "p99_ms": x, "p999_ms": x, ...}
#
# usage: bench/serve_load.sh URL BODYFILE CONNECTIONS SECONDS
#   URL          base URL of the server, e.g. http://127.0.0.1:6566 (loopback only)
#   BODYFILE     JSON request body, e.g. {"features": [...], "entities": {"user_id": [1]}}
#   CONNECTIONS  concurrent keep-alive connections (wrk -c); threads = min(2, CONNECTIONS)
#   SECONDS      duration of the run (wrk -d); the run stops by itself
# env: WRK_TIMEOUT  per-request timeout (default 10s; wrk's own default is 2s,
#                   and timed-out requests would drop out of the percentiles)
#      WRK_LOG      if set, wrk's full human-readable output is appended there
# Installs wrk with apt-get if it is missing.
set -euo pipefail
if [ $# -ne 4 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
URL=${1%/}
BODYFILE=$2
CONNS=$3
SECS=$4
HERE=$(cd "$(dirname "$0")" && pwd)

case "$URL" in
  http://127.*|http://localhost:*|http://localhost/*|http://localhost|http://\[::1\]*) ;;
  *) echo "serve_load.sh: refusing non-loopback URL '$URL' (only 127.0.0.0/8, localhost, [::1])" >&2; exit 2 ;;
esac
[ -r "$BODYFILE" ] || { echo "serve_load.sh: cannot read body file '$BODYFILE'" >&2; exit 2; }
[[ "$CONNS" =~ ^[1-9][0-9]*$ ]] || { echo "serve_load.sh: CONNECTIONS must be a positive integer" >&2; exit 2; }
[[ "$SECS" =~ ^[1-9][0-9]*$ ]] && [ "$SECS" -le 600 ] || { echo "serve_load.sh: SECONDS must be an integer in 1..600" >&2; exit 2; }

if ! command -v wrk >/dev/null 2>&1; then
  echo "serve_load.sh: installing wrk" >&2
  (apt-get update -qq && apt-get install -y -qq wrk) >&2
fi

THREADS=$(( CONNS < 2 ? CONNS : 2 ))
OUTPUT=$(BODY="$BODYFILE" timeout $(( SECS + 30 )) \
  wrk -t "$THREADS" -c "$CONNS" -d "${SECS}s" --timeout "${WRK_TIMEOUT:-10s}" --latency \
      -s "$HERE/wrk/post.lua" "$URL/get-online-features")
if [ -n "${WRK_LOG:-}" ]; then printf '%s\n' "$OUTPUT" >>"$WRK_LOG"; fi
LINE=$(printf '%s\n' "$OUTPUT" | grep '^{"requests"' | tail -n 1)
[ -n "$LINE" ] || { printf '%s\n' "$OUTPUT" >&2; echo "serve_load.sh: wrk printed no summary" >&2; exit 1; }
printf '%s\n' "$LINE"
