#!/usr/bin/env bash
# Parity and monitoring benchmark (issue 7) on the reference dataset at
# scale 1 (fixed dates; run bench/online.sh first, which builds and
# materializes the repo): parity for 10,000 sampled entities per view across
# the two views, and monitor over all 6.05M feature rows (a 30-day current
# window against the 150 days before it). Whole process, /usr/bin/time.
#
# usage: bench/checks.sh [RUNS]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
WORK=${BENCH_DIR:-/tmp/almanac-bench}
REPO="$WORK/online-embedded"
[ -f "$REPO/.almanac/registry.json" ] || { echo "run bench/online.sh first" >&2; exit 1; }
cargo build --release -p almanac-cli --quiet
BIN="$PWD/target/release/almanac"
"$BIN" --repo "$REPO" materialize --start 2026-01-01T00:00:00Z --end 2026-07-01T00:00:00Z >/dev/null
run() { # LABEL ARGS...
  local label=$1; shift
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "$label: %e s wall, %M KB peak RSS" "$BIN" --repo "$REPO" "$@" > "$WORK/check.json" || true
  done
}
run "parity, 10,000 entities x 2 views" parity --at 2026-07-01T00:00:00Z --sample 10000 --json
python3 -c "import json; r=json.load(open('$WORK/check.json')); print('  checked', sum(f['checked'] for v in r['views'] for f in v['features']), 'values;', sum(f['different']+f['missing_online']+f['absent_offline'] for v in r['views'] for f in v['features']), 'divergent')"
run "monitor, 6.05M rows" monitor --at 2026-07-01T00:00:00Z --window 30d --reference-window 150d --json
python3 -c "import json; r=json.load(open('$WORK/check.json')); print('  rows', sum(v['current_rows']+v['reference_rows'] for v in r['views']), '; alerts', sum(len(v['alerts'])+sum(len(f['alerts']) for f in v['features']) for v in r['views']))"
