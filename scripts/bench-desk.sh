#!/usr/bin/env bash
# The desk with many conversations, in the real window: list first render, scrolling frame rate,
# memory, launch to first paint. Prints figures; asserts nothing.
#
#   scripts/bench-desk.sh [--conversations N] [--runs R] [--dmabuf both|on|off] [--keep]
#
# 1. Prepares a desk data folder holding N conversations (default 10,000), produced for real: a
#    `lockdesk-cli gateway`, four `lockdesk-cli simulate` at a high rate (anonymous and
#    login-mid-conversation passes, a shared brand key) and `lockdesk-cli watch` filling
#    desk.sqlite3 until every gateway entry is applied. The simulators stop once the gateway has
#    N conversations (a few more may land: the figure printed is the real count).
# 2. For each run and renderer mode (WEBKIT_DISABLE_DMABUF_RENDERER=1 = "off"), launches the release
#    app under Xvfb through tauri-driver + WebKitWebDriver (tests/perf/bench-desk.mjs), twice:
#    "empty": a fresh data folder, feed = a second gateway that has no entries;
#    "full": a copy of the prepared folder, feed = the first gateway (still running; the app
#    resumes from the store's cursor). The full launch waits until the list shows every row, then
#    reads window.__lockdeskPerf (first render from performance marks: "list dom/paint ms" from
#    the rows' arrival in the UI, "rows on screen at ms" since the page's navigation start, so
#    including the IPC call; sampleScroll at 40 and 400 px a frame, after "idle fps": frames with
#    nothing moving, what the WebView under Xvfb can do at all), and the PSS of lockdesk + every process under it (WebKitWebProcess,
#    WebKitNetworkProcess) from /proc/PID/smaps_rollup, 3 s after the list (or empty message) is
#    shown. First paint is the app's own log line (`first_paint_ms`, from process start).
#
# Needs: a release build (built if missing), Xvfb, tauri-driver, WebKitWebDriver, sqlite3, the
# e2e tests' npm packages (tests/e2e). Environment: LOCKDESK_APP / LOCKDESK_CLI override the
# binaries; CARGO_TARGET_DIR is honoured.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

conversations=10000
runs=1
modes=(off on)
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --conversations) conversations="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --dmabuf)
      case "$2" in both) modes=(off on) ;; on|off) modes=("$2") ;; *) die "--dmabuf: both, on or off" ;; esac
      shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[[ "$conversations" =~ ^[1-9][0-9]*$ ]] || die "--conversations: a positive number"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "--runs: a positive number"

target="${CARGO_TARGET_DIR:-$ROOT/target}"
app="${LOCKDESK_APP:-$target/release/lockdesk}"
cli="${LOCKDESK_CLI:-$target/release/lockdesk-cli}"
if [ ! -x "$app" ] || [ ! -x "$cli" ]; then
  build_ui
  cargo build --release -q -p lockdesk -p lockdesk-cli
fi
for tool in xvfb-run dbus-run-session tauri-driver WebKitWebDriver sqlite3 node; do
  command -v "$tool" >/dev/null || die "$tool is required (scripts/test.sh installs the test packages)"
done
ensure_npm "$ROOT/tests/e2e"

work="$(mktemp -d "${TMPDIR:-/tmp}/lockdesk-bench-desk.XXXXXX")"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "$keep" = 1 ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

WEBHOOK_SECRET="bench-webhook-secret-$(openssl rand -hex 8)"
PROVIDER_TOKEN="bench-provider-$(openssl rand -hex 16)"
SUPERVISOR="bench-supervisor-$(openssl rand -hex 16)"
ISSUER="https://brand.example" # the simulator's issuer

"$cli" keys generate --out "$work/desk" >/dev/null
"$cli" keys generate --out "$work/brand" >/dev/null
cat >"$work/gateway.toml" <<EOF
[[webhook]]
name = "sim"
secret = "$WEBHOOK_SECRET"

[[provider]]
name = "sim"
credential = "$PROVIDER_TOKEN"

[[subscriber]]
name = "bench-supervisor"
credential = "$SUPERVISOR"
role = "supervisor"
EOF

# Starts a gateway on a free port (in this shell, so cleanup knows its pid); sets gateway_addr.
start_gateway() {
  local dir="$1"
  mkdir -p "$dir"
  "$cli" gateway --listen 127.0.0.1:0 --data "$dir" --config "$work/gateway.toml" >"$dir.out" 2>"$dir.err" &
  pids+=($!)
  gateway_addr=""
  for _ in $(seq 1 300); do
    gateway_addr="$(sed -n 's/^listening on //p' "$dir.out")"
    [ -n "$gateway_addr" ] && return 0
    sleep 0.1
  done
  die "the gateway in $dir did not start: $(cat "$dir.err")"
}

# A desk configuration folder whose feed is the gateway at $2.
write_config() {
  mkdir -p "$1"
  cat >"$1/config.toml" <<EOF
[feed]
url = "ws://$2/v1/feed"
credential = "$SUPERVISOR"

[[trust]]
issuer = "$ISSUER"
key = "$work/brand/public.pem"

[decryption]
keys = ["$work/desk/private.pem"]
EOF
}

start_gateway "$work/gateway-full"
full_addr="$gateway_addr"
start_gateway "$work/gateway-empty"
empty_addr="$gateway_addr"
write_config "$work/full/config" "$full_addr"
write_config "$work/empty-config" "$empty_addr"
gateway_db="$work/gateway-full/gateway.sqlite3"
store="$work/full/data/desk.sqlite3"

# One number from a database (0 when it or the row does not exist yet).
q() {
  local v
  v="$(sqlite3 -cmd '.timeout 5000' "$1" "$2" 2>/dev/null || true)"
  echo "${v:-0}"
}

say "filling the desk store with $conversations conversations (gateway $full_addr)"
fill_start=$SECONDS
mkdir -p "$work/full/data"
"$cli" watch --config "$work/full/config/config.toml" --data "$work/full/data" >/dev/null 2>"$work/watch.err" &
watch_pid=$!
pids+=($watch_pid)
sims=()
for k in 1 2 3 4; do
  # Distinct seeds: distinct conversation, visitor and event ids in every simulator.
  LOCKDESK_WEBHOOK_SECRET="$WEBHOOK_SECRET" LOCKDESK_PROVIDER_TOKEN="$PROVIDER_TOKEN" \
    "$cli" simulate --gateway "http://$full_addr" --desk-key "$work/desk/public.pem" \
    --brand-key "$work/brand/private.pem" --rate 5000 --duration 3600 --seed $((k * 1000000)) \
    --scenario anonymous --scenario login-mid-conversation >/dev/null 2>"$work/sim$k.err" &
  sims+=($!)
  pids+=($!)
done
last_print=0
while :; do
  n="$(q "$gateway_db" "SELECT count(DISTINCT conversation_id) FROM entries WHERE kind = 'webhook'")"
  [ "${n:-0}" -ge "$conversations" ] && break
  if [ $((SECONDS - last_print)) -ge 15 ]; then
    say "  gateway: $n conversations, desk: $(q "$store" 'SELECT count(*) FROM conversations') ($((SECONDS - fill_start)) s)"
    last_print=$SECONDS
  fi
  for p in "${sims[@]}"; do kill -0 "$p" 2>/dev/null || die "a simulator stopped: $(cat "$work"/sim*.err)"; done
  sleep 0.5
done
for p in "${sims[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${sims[@]}"; do wait "$p" 2>/dev/null || true; done
last_seq="$(q "$gateway_db" 'SELECT max(seq) FROM entries')"
while [ "$(q "$store" "SELECT value FROM desk_meta WHERE key = 'cursor'")" -lt "$last_seq" ]; do
  kill -0 "$watch_pid" 2>/dev/null || die "the watch stopped: $(cat "$work/watch.err")"
  sleep 0.5
done
kill -INT "$watch_pid"
wait "$watch_pid" || true
rows="$(q "$store" 'SELECT count(*) FROM conversations')"
say "store ready: $rows conversations, $last_seq gateway entries, $((SECONDS - fill_start)) s; $(du -sh "$work/full/data" | cut -f1) on disk"

results="$work/results.jsonl"
: >"$results"
launch() {
  local run="$1" mode="$2" window="$3" config="$4" data="$5" expect="$6" line
  if line="$(xvfb-run -a -s '-screen 0 1400x900x24' dbus-run-session -- \
    node "$ROOT/tests/perf/bench-desk.mjs" --app "$app" --config "$config" --data "$data" \
    --rows "$expect" --dmabuf "$mode" --port "${BENCH_DRIVER_PORT:-4644}" 2>"$work/launch.err" | tail -1)" &&
    [ -n "$line" ]; then
    echo "{\"run\":$run,\"window\":\"$window\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",${line#\{}" >>"$results"
  else
    say "run $run $mode $window failed: $(tail -3 "$work/launch.err")"
  fi
}

for run in $(seq 1 "$runs"); do
  for mode in "${modes[@]}"; do
    say "run $run, dmabuf renderer $mode: empty window"
    rm -rf "$work/empty-data"
    mkdir -p "$work/empty-data"
    launch "$run" "$mode" empty "$work/empty-config" "$work/empty-data" 0
    say "run $run, dmabuf renderer $mode: $rows conversations"
    rm -rf "$work/run-data"
    cp -a "$work/full/data" "$work/run-data"
    rm -rf "$work/run-data/logs"
    launch "$run" "$mode" full "$work/full/config" "$work/run-data" "$rows"
  done
done

echo
echo "binary: $app; $rows conversations; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
empty = {(r['run'], r['dmabuf']): r['pss']['mib'] for r in rows if r['window'] == 'empty'}
head = ('run', 'dmabuf', 'window', 'rows', 'paint ms', 'list dom ms', 'list paint ms',
        'rows on screen at ms', 'idle fps', 'fps@40px', 'p95 ms', 'fps@400px', 'p95 ms', 'DOM rows', 'PSS MiB', 'x empty', 'load')
print(' | '.join(head))
print(' | '.join('---' for _ in head))
for r in rows:
    fr = r.get('firstRender') or {}
    s40, s400 = r.get('scroll40') or {}, r.get('scroll400') or {}
    idle, marks = r.get('idle') or {}, r.get('marks') or {}
    base = empty.get((r['run'], r['dmabuf']))
    f = lambda v, d=1: '-' if v is None else f'{v:.{d}f}'
    print(' | '.join(str(x) for x in (
        r['run'], r['dmabuf'], r['window'], r['rows'], r.get('firstPaintMs', '-'),
        f(fr.get('domMs')), f(fr.get('paintMs')), f(marks.get('paintedAtMs'), 0), f(idle.get('fps')), f(s40.get('fps')), f(s40.get('p95FrameMs')),
        f(s400.get('fps')), f(s400.get('p95FrameMs')), r.get('renderedRows', '-'), f(r['pss']['mib']),
        f(r['pss']['mib'] / base, 2) if base else '-', r['load'])))
print()
print('PSS by process (MiB), and for the full window the list\'s marks in ms after its data arrived')
print('(list-mounted: Svelte created the rows; list-measured: the first layout, forced by the row')
print('measurement; list-flushed: DOM updated; the paint is list paint ms above):')
for r in rows:
    line = f"run {r['run']} {r['dmabuf']} {r['window']}: " + ', '.join(f"{p['name']}={p['mib']}" for p in r['pss']['parts'])
    marks = (r.get('marks') or {}).get('all') or {}
    if 'lockdesk:list-data' in marks:
        t0 = marks['lockdesk:list-data']
        line += '; ' + ', '.join(f"{k.split(':')[1]} +{v - t0}" for k, v in sorted(marks.items(), key=lambda kv: kv[1]) if v >= t0 and k != 'lockdesk:list-data')
        line += f"; page first paint at {marks.get('lockdesk:first-paint', '-')} ms, list data at {t0} ms after navigation"
    print(line)
PY
