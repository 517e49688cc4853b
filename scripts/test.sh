#!/usr/bin/env bash
# Runs every Lockdesk test: formatting, lints, Rust tests, the UI's type check, lint and unit
# tests, the bindings freshness check, interoperability, a short fuzz run, and the end-to-end
# test of the real window under Xvfb. Installs whatever is missing first. Exit status 0 only
# when every step passed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# --- set-up (a failure here stops everything) ------------------------------------------------
set -e
ensure_tools
ensure_packages "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
ensure_npm "$ROOT/ui"
ensure_npm "$ROOT/tests/e2e"
if ! command -v tauri-driver >/dev/null; then
  say "installing tauri-driver 2 (cargo install)"
  cargo install tauri-driver --version '^2' --locked -q
fi
command -v WebKitWebDriver >/dev/null || die "WebKitWebDriver not found (package webkit2gtk-driver)"
# The desktop binary embeds the built UI, so the UI is built before any cargo step.
build_ui
set +e

# --- hermeticity: no test may touch the real Lockdesk folders ----------------------------------
real_state() {
  local d
  for d in "${XDG_CONFIG_HOME:-$HOME/.config}" "${XDG_DATA_HOME:-$HOME/.local/share}" "${XDG_CACHE_HOME:-$HOME/.cache}"; do
    [ -d "$d" ] && find "$d" -maxdepth 2 -iname '*lockdesk*' -printf '%p %T@\n' 2>/dev/null
  done | sort
}
before_state="$(real_state)"

passed=0
failed=0
failures=()
step() {
  local name="$1"
  shift
  say "$name"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    printf '    ok: %s (%ss)\n' "$name" $((SECONDS - start)) >&2
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '    FAILED: %s (%ss)\n' "$name" $((SECONDS - start)) >&2
  fi
}

ui() { (cd "$ROOT/ui" && npm run --silent "$@"); }

e2e() {
  cargo build -q -p lockdesk || return 1
  # A virtual display, a private session bus (notifications, single-instance) and a
  # notification daemon, all torn down with the run.
  xvfb-run -a -s '-screen 0 1400x900x24' dbus-run-session -- bash -c '
    dunst >/dev/null 2>&1 &
    dunst_pid=$!
    node --test --test-concurrency=1 tests/e2e/
    status=$?
    kill $dunst_pid 2>/dev/null
    exit $status'
}

step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy (all targets, warnings are errors)" cargo clippy -q --workspace --all-targets -- -D warnings
step "rust tests" cargo test -q --workspace --no-fail-fast
step "bindings are fresh (ui/src/ipc/bindings.ts)" cargo test -q -p lockdesk-api bindings_are_fresh
step "ui type check (svelte-check)" ui check
step "ui lint (eslint)" ui lint
step "ui unit tests (vitest)" ui test
if [ -f tests/interop/run.sh ]; then
  step "interoperability (node jose, python jwcrypto)" bash tests/interop/run.sh
fi
if [ -f fuzz/run.sh ]; then
  step "fuzz the verifier (short run)" bash fuzz/run.sh "${LOCKDESK_FUZZ_SECONDS:-30}"
fi
step "end to end: the real window under Xvfb" e2e

after_state="$(real_state)"
if [ "$before_state" = "$after_state" ]; then
  passed=$((passed + 1))
  printf '    ok: no test touched the real Lockdesk folders\n' >&2
else
  failed=$((failed + 1))
  failures+=("hermeticity")
  printf '    FAILED: tests touched the real Lockdesk folders:\n%s\n' \
    "$(diff <(echo "$before_state") <(echo "$after_state"))" >&2
fi

echo
for f in "${failures[@]:-}"; do [ -n "$f" ] && echo "failed step: $f"; done
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
