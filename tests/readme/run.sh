#!/usr/bin/env bash
# Runs every ```sh, ```bash and ```console block of README.md, in order, in one shell, in a
# scratch folder, with the lockdesk-cli just built from this checkout (never an installed one).
# HOME, the XDG folders, LOCKDESK_CONFIG_DIR (~/.config/lockdesk) and LOCKDESK_DATA_DIR
# (~/.local/share/lockdesk) all point inside the scratch folder, which is removed at the end.
#
# A block fails the run when any command in it fails (set -e, pipefail); the report names the
# block's line in README.md and shows its output. Variables, exports and background jobs (`&`)
# carry over from block to block, as in one terminal; every process left is killed at the end.
# In ```console blocks only the `$ ` lines run.
#
# An HTML comment on the line right before a block changes how it runs:
#   <!-- readme-test: skip (REASON) -->             not run (a reason is required)
#   <!-- readme-test: wait-for-port PORT -->        run, then wait (20 s at most) until
#                                                    127.0.0.1:PORT accepts connections
#   <!-- readme-test: ctrl-c after SECS -->         run it in its own shell and press Ctrl-C
#                                                    (SIGINT) after SECS; it must then exit 0
# `cargo build ... -p lockdesk-cli` and `cargo build ... -p lockdesk-testkit` lines are satisfied
# by the build this script does first (lockdesk-cli, and lockdesk-pg-sandbox, the tests' throw-away
# PostgreSQL, for the multi-instance walk-through; the scratch folder is not a checkout); any other
# cargo command in a block fails it. Every process a block leaves is killed with SIGTERM at the end
# (lockdesk-pg-sandbox then stops its server and deletes its cluster).
#
# Usage: bash tests/readme/run.sh [README]     (LOCKDESK_README_LIMIT: seconds for the whole run, 120)
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
README="${1:-$ROOT/README.md}"
LIMIT="${LOCKDESK_README_LIMIT:-120}"

# Every binary (the same selection as the interop and end-to-end tests: one build of the
# dependencies in a full test run), unless scripts/test.sh has built them (LOCKDESK_BINS_BUILT).
if [ -z "${LOCKDESK_BINS_BUILT:-}" ]; then
  (cd "$ROOT" && cargo build -q --workspace --bins) ||
    { echo "readme: cannot build lockdesk-cli and lockdesk-pg-sandbox" >&2; exit 1; }
fi
# scripts/test.sh names the binaries it copied aside (LOCKDESK_BIN_DIR).
BIN_DIR="${LOCKDESK_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}"
for bin in lockdesk-cli lockdesk-pg-sandbox; do
  [ -x "$BIN_DIR/$bin" ] || { echo "readme: no $bin in $BIN_DIR" >&2; exit 1; }
done

SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/readme-run.XXXXXX")"
STATE="$SCRATCH/.readme-test"
mkdir -p "$STATE" "$SCRATCH/work" "$SCRATCH/home"
group=""
cleanup() {
  [ -n "$group" ] && kill -TERM -- "-$group" 2>/dev/null
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

# --- extract the blocks: $STATE/blocks.tsv gets "line<TAB>mode<TAB>argument", $STATE/<line>.sh the code
awk -v dir="$STATE" '
  function flush_marker() { mode = "run"; arg = "" }
  BEGIN { flush_marker(); inblock = 0 }
  inblock && /^```[ \t]*$/ { inblock = 0; close(file); print start "\t" mode "\t" arg >> (dir "/blocks.tsv"); flush_marker(); next }
  inblock { line = $0
            if (console) { if (line !~ /^\$ /) next; sub(/^\$ /, "", line) }
            print line > file; next }
  /^```(sh|bash|console)[ \t]*$/ { inblock = 1; start = NR; console = ($0 ~ /console/); file = dir "/" NR ".sh"
                                   printf "" > file; next }
  /^```/ { flush_marker(); skipping = !skipping; next }
  /^<!-- readme-test: .* -->[ \t]*$/ && !skipping {
    m = $0; sub(/^<!-- readme-test: /, "", m); sub(/ -->[ \t]*$/, "", m)
    if (m ~ /^skip \(.+\)$/) { mode = "skip"; arg = substr(m, 7, length(m) - 7) }
    else if (m ~ /^wait-for-port [0-9]+$/) { mode = "port"; arg = substr(m, 15) }
    else if (m ~ /^ctrl-c after [0-9]+$/) { mode = "ctrlc"; arg = substr(m, 14) }
    else { print "README line " NR ": unknown readme-test marker: " m > "/dev/stderr"; bad = 1 }
    next }
  /^[ \t]*$/ { next }
  { flush_marker() }
  END { if (inblock) { print "README: the block at line " start " is never closed" > "/dev/stderr"; bad = 1 }
        exit bad }
' "$README" || exit 1
[ -s "$STATE/blocks.tsv" ] || { echo "readme: no code block found in $README" >&2; exit 1; }

# --- the driver: one shell running every block in order -----------------------------------
DRIVER="$STATE/driver.sh"
{
  cat <<DRV
set -eo pipefail
cd "$SCRATCH/work"
export HOME="$SCRATCH/home"
export XDG_CONFIG_HOME="\$HOME/.config" XDG_DATA_HOME="\$HOME/.local/share"
export XDG_CACHE_HOME="\$HOME/.cache" XDG_STATE_HOME="\$HOME/.local/state"
export LOCKDESK_CONFIG_DIR="\$HOME/.config/lockdesk" LOCKDESK_DATA_DIR="\$HOME/.local/share/lockdesk"
export PATH="$BIN_DIR:\$PATH"
unset LOCKDESK_FEED_CREDENTIAL LOCKDESK_WEBHOOK_SECRET LOCKDESK_PROVIDER_TOKEN RUST_LOG
cargo() {
  case " \$* " in
    *" build "*" lockdesk-cli "*|*" build "*" lockdesk-testkit "*) echo "readme-test: the binaries are the ones just built ($BIN_DIR)" ;;
    *) echo "readme-test: the README runs cargo \$*; only 'cargo build -p lockdesk-cli' (or lockdesk-testkit) is supported" >&2; return 1 ;;
  esac
}
__begin() { echo "\$1" > "$STATE/current"; exec >"$STATE/\$1.log" 2>&1; }
__wait_port() {
  local i
  for i in \$(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/\$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "readme-test: nothing listens on 127.0.0.1:\$1 after 20 s"
  return 1
}
DRV
  while IFS=$'\t' read -r line mode arg; do
    case "$mode" in
      skip) continue ;;
      ctrlc)
        printf '__begin %s\n' "$line"
        printf 'timeout --preserve-status -s INT %s bash -eo pipefail %q\n' "$arg" "$STATE/$line.sh"
        ;;
      *)
        printf '__begin %s\n' "$line"
        cat "$STATE/$line.sh"
        printf '\n'
        [ "$mode" = port ] && printf '__wait_port %s\n' "$arg"
        ;;
    esac
    printf 'echo "%s ok" >> "%s/done"\n' "$line" "$STATE"
  done <"$STATE/blocks.tsv"
  printf 'echo finished > "%s/finished"\n' "$STATE"
} >"$DRIVER"

# A port the README uses must be free before the run (another program would answer instead).
for p in $(awk -F'\t' '$2 == "port" { print $3 }' "$STATE/blocks.tsv"); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "readme: port $p is already in use on this machine; the README's examples need it free" >&2
    exit 1
  fi
done

start=$SECONDS
setsid bash "$DRIVER" </dev/null >"$STATE/driver.log" 2>&1 &
group=$!
status=""
while [ $((SECONDS - start)) -lt "$LIMIT" ]; do
  if ! kill -0 "$group" 2>/dev/null; then
    wait "$group"
    status=$?
    break
  fi
  sleep 0.2
done
elapsed=$((SECONDS - start))
kill -TERM -- "-$group" 2>/dev/null
group=""

ran=$(cat "$STATE/done" 2>/dev/null | wc -l)
skipped=$(awk -F'\t' '$2 == "skip"' "$STATE/blocks.tsv" | wc -l)
awk -F'\t' '$2 == "skip" { print "readme: skipped the block at README.md line " $1 ": " $3 }' "$STATE/blocks.tsv"
if [ -n "$status" ] && [ "$status" -eq 0 ] && [ -f "$STATE/finished" ]; then
  echo "readme: $ran blocks ran as written, $skipped skipped (${elapsed}s)"
  exit 0
fi
current="$(cat "$STATE/current" 2>/dev/null || echo '?')"
if [ -z "$status" ]; then
  echo "readme: FAILED: the block at README.md line $current did not finish within the run's ${LIMIT}s"
else
  echo "readme: FAILED: the block at README.md line $current failed (exit $status)"
fi
echo "--- the block:"
cat "$STATE/$current.sh" 2>/dev/null
echo "--- its output:"
cat "$STATE/$current.log" 2>/dev/null
[ -s "$STATE/driver.log" ] && { echo "--- the driver's output:"; cat "$STATE/driver.log"; }
echo "readme: $ran blocks ran, $skipped skipped, 1 failed (${elapsed}s)"
exit 1
