#!/usr/bin/env bash
# Coverage-guided fuzzing of the verifier's front with cargo-fuzz (libFuzzer).
#
#   bash fuzz/run.sh SECONDS [TARGET]   # CI: bash fuzz/run.sh 30   long run: bash fuzz/run.sh 3600
#
# TARGET: verify_front (default: any bytes as a token) or signed_claims (claims signed with the
# trusted key, to reach the post-signature checks); `all` runs both, SECONDS each.
# Only stable Rust is available here: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags.
# cargo-fuzz is installed (cargo install --locked) when missing. Seeds in fuzz/seeds/ are
# committed; the working corpus (fuzz/corpus-run/) and crashes (fuzz/artifacts/) are not.
# Exit status is non-zero when libFuzzer finds a crash; the input is then in fuzz/artifacts/.
set -euo pipefail

SECONDS_ARG="${1:?usage: fuzz/run.sh SECONDS [verify_front|signed_claims|all]}"
TARGET="${2:-verify_front}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
# A target dir of our own: never contend with the workspace's build lock.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HERE/target}"

run_one() {
  local t="$1"
  mkdir -p "corpus-run/$t" "artifacts/$t"
  cp -n seeds/"$t"/* "corpus-run/$t/" 2>/dev/null || true
  echo "fuzz: $t for ${SECONDS_ARG}s" >&2
  # Sanitizer off: the code under test is safe Rust over OpenSSL (not instrumented either way);
  # panics, overflows (debug assertions on) and timeouts are what we look for, at full speed.
  cargo fuzz run --sanitizer none --debug-assertions "$t" "corpus-run/$t" -- \
    -max_total_time="$SECONDS_ARG" -max_len=20000 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/"
}

if [ "$TARGET" = all ]; then
  run_one verify_front
  run_one signed_claims
else
  run_one "$TARGET"
fi
