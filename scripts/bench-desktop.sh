#!/usr/bin/env bash
# Measures the desktop app: launch to first paint, and memory (PSS summed over the app and its
# WebKit processes), with and without WEBKIT_DISABLE_DMABUF_RENDERER=1. Prints figures; asserts
# nothing. Usage: scripts/bench-desktop.sh [RUNS] (default 3). Needs Xvfb (scripts/test.sh installs it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
runs="${1:-3}"
app="${LOCKDESK_APP:-$ROOT/target/release/lockdesk}"
if [ ! -x "$app" ]; then
  build_ui
  cargo build --release -q -p lockdesk
fi

pss_tree() {
  python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1])
children = {}
for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
        with open(f'/proc/{pid}/stat') as f:
            ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(pid))
    except OSError:
        pass
total, names, todo = 0, [], [root]
while todo:
    pid = todo.pop()
    todo += children.get(pid, [])
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            kb = sum(int(l.split()[1]) for l in f if l.startswith('Pss:'))
        with open(f'/proc/{pid}/comm') as f:
            names.append(f'{f.read().strip()}={kb // 1024}MiB')
        total += kb
    except OSError:
        pass
print(f'{total / 1024:.0f} MiB ({", ".join(names)})')
PY
}

measure() {
  local label="$1" dmabuf="$2"
  local i
  for i in $(seq 1 "$runs"); do
    local dir
    dir="$(mktemp -d)"
    (
      export LOCKDESK_CONFIG_DIR="$dir/config" LOCKDESK_DATA_DIR="$dir/data" RUST_LOG=info
      if [ "$dmabuf" = off ]; then export WEBKIT_DISABLE_DMABUF_RENDERER=1; else unset WEBKIT_DISABLE_DMABUF_RENDERER; fi
      xvfb-run -a -s '-screen 0 1400x900x24' dbus-run-session -- bash -c '
        "$0" 2>/dev/null & app=$!
        for _ in $(seq 1 600); do
          grep -hqs first_paint_ms "$LOCKDESK_DATA_DIR"/logs/* && break
          sleep 0.1
        done
        sleep 3
        paint="$(grep -hos "first_paint_ms=[0-9]*" "$LOCKDESK_DATA_DIR"/logs/* | head -1 | cut -d= -f2)"
        echo "first_paint_ms=${paint:-none} pss=$(bash -c "$1" _ $app)"
        kill -TERM $app; wait $app 2>/dev/null || true' "$app" "$(declare -f pss_tree); pss_tree \$1"
    ) | sed "s/^/$label run $i: /"
    rm -rf "$dir"
  done
}

echo "binary: $app"
measure "dmabuf renderer on " on
measure "dmabuf renderer off" off
