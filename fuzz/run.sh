#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer) of everything that parses bytes from
# outside: the verifier, the gateway's webhook and evidence bodies, the desk's apply, the feed
# client's frame handling.
#
#   bash fuzz/run.sh SECONDS [TARGET|all] [libFuzzer flags...]
#   bash fuzz/run.sh build           build every target, run none
#   CI: bash fuzz/run.sh 20 all      long run: bash fuzz/run.sh 600 all
#
# TARGET (default verify_front):
#   verify_front      any bytes as a token
#   signed_claims     header + claims signed with the trusted key (post-signature checks)
#   gateway_webhook   webhook deliveries: any body or a structured JSON/form one, valid HMAC or not
#   gateway_evidence  evidence bodies: any bytes or structured, tokens built from segments
#   desk_apply        batches of arbitrary entries applied to a real desk store, invariants checked
#   feed_frames       arbitrary frames over a loopback WebSocket to the real feed client + desk
# `all` runs every target, SECONDS each (two at a time: FUZZ_JOBS), and fails if any found
# something. Extra arguments go to libFuzzer (e.g. -fork=1 -ignore_crashes=1 to carry on past
# a known crash on a long run).
# Only stable Rust is available here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# cargo-fuzz is installed (cargo install --locked) when missing. Seeds in fuzz/seeds/ are
# committed; the working corpus (fuzz/corpus-run/) and crashes (fuzz/artifacts/) are not.
# Exit status is non-zero when libFuzzer finds a crash; the input is then in fuzz/artifacts/.
set -euo pipefail

ALL=(verify_front signed_claims gateway_webhook gateway_evidence desk_apply feed_frames)
SECONDS_ARG="${1:?usage: fuzz/run.sh SECONDS [$(IFS='|'; echo "${ALL[*]}")|all] [libFuzzer flags...]}"
TARGET="${2:-verify_front}"
shift $(($# < 2 ? $# : 2))
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
# scripts/test.sh compiles the workspace through clippy-driver (RUSTC_WORKSPACE_WRAPPER): the
# fuzz build is its own configuration and runs no lints.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS
# Debian's SQLite (libsqlite3-dev) instead of compiling the bundled one: SQLite is C and never
# instrumented, so the fuzzing is the same, and its optimised compile was 72 of the build's 384
# CPU s. The shipped binaries and the tests keep the bundled SQLite.
export LIBSQLITE3_SYS_USE_PKG_CONFIG=1
# A target dir of our own: never contend with the workspace's build lock.
# A target dir of our own: never contend with the workspace's build lock.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HERE/target}"
# Sanitizer off: the code under test is safe Rust over OpenSSL and SQLite (not instrumented
# either way); panics, overflows (debug assertions on) and timeouts are what we look for, at
# full speed.
# cargo-fuzz's one codegen unit: on a 2-core machine the build took 381 CPU s with one unit
# against 480 with sixteen (fuzz/README.md, "Cost in CI").
FLAGS=(--sanitizer none --debug-assertions)

run_one() {
  local t="$1"
  shift
  # The structure-aware targets do real work per input (SQLite commits, RSA, a WebSocket):
  # their inputs stay small, and are tried at every size from the start (-len_control=0: a
  # few bytes make no entry at all; with libFuzzer's slow growth of sizes a 60 s run missed the
  # heartbeat overflow that this finds in seconds).
  local sizes=(-max_len=20000)
  case "$t" in desk_apply | feed_frames) sizes=(-max_len=4096 -len_control=0) ;; esac
  mkdir -p "corpus-run/$t" "artifacts/$t"
  cp -n seeds/"$t"/* "corpus-run/$t/" 2>/dev/null || true
  echo "fuzz: $t for ${SECONDS_ARG}s" >&2
  cargo fuzz run "${FLAGS[@]}" "$t" "corpus-run/$t" -- \
    -max_total_time="$SECONDS_ARG" "${sizes[@]}" -timeout=20 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "$@"
}

if [ "$SECONDS_ARG" = build ]; then
  # Only the build of every target (scripts/test.sh starts it early, in the background; the runs
  # that follow find it fresh: the same flags).
  cargo fuzz build "${FLAGS[@]}"
elif [ "$TARGET" = all ]; then
  # One build of every target (shared dependencies, one cargo invocation), then the runs.
  cargo fuzz build "${FLAGS[@]}"
  # Two targets at a time (FUZZ_JOBS): each libFuzzer process is single-threaded, so on two
  # cores each still gets a core for its SECONDS; a target's output is printed when it ends.
  jobs_max="${FUZZ_JOBS:-2}"
  logs="$(mktemp -d)"
  failed=()
  pids=()
  names=()
  wait_first() {
    local t="${names[0]}"
    wait "${pids[0]}" || failed+=("$t")
    cat "$logs/$t.log" >&2
    pids=("${pids[@]:1}")
    names=("${names[@]:1}")
  }
  for t in "${ALL[@]}"; do
    [ "${#pids[@]}" -ge "$jobs_max" ] && wait_first
    run_one "$t" "$@" >"$logs/$t.log" 2>&1 &
    pids+=("$!")
    names+=("$t")
  done
  while [ "${#pids[@]}" -gt 0 ]; do wait_first; done
  rm -rf "$logs"
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: findings in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
  fi
else
  run_one "$TARGET" "$@"
fi
