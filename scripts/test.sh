#!/usr/bin/env bash
# Runs every Lockdesk test: formatting, lints, Rust tests, the UI's type check, lint and unit
# tests, the bindings freshness check, interoperability, a short fuzz run, and the end-to-end
# test of the real window under Xvfb. Installs whatever is missing first. Exit status 0 only
# when every step passed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# A CI run builds once from a fresh clone: incremental state (several GB over the ~35 test
# binaries) would only take disk. A developer's own setting is kept.
[ -n "${CI:-}" ] && export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# --- set-up (a failure here stops everything) ------------------------------------------------
set -e
ensure_tools
ensure_packages "${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
# The Rust test runner (a new machine of this kind has it; elsewhere it is built once).
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest (cargo install)"
  cargo install cargo-nextest --locked -q
fi
if ! command -v tauri-driver >/dev/null; then
  say "installing tauri-driver 2 (cargo install)"
  cargo install tauri-driver --version '^2' --locked -q
fi
command -v WebKitWebDriver >/dev/null || die "WebKitWebDriver not found (package webkit2gtk-driver)"
set +e

# --- hermeticity: no test may touch the user's Lockdesk folders ------------------------------
# Every step below runs with HOME and the XDG folders in a fresh, empty temporary folder, and
# nothing named *lockdesk* may be in it afterwards. The verdict does not depend on what the
# machine had before: a test that creates ~/.local/share/app.lockdesk.desktop fails the run even
# where the real folder already exists (creating an existing folder leaves no trace on it). The
# tools keep their real homes (cargo, rustup, npm, pyenv, git), set explicitly before the switch.
# The real folders are also compared before and after, for a test that would ignore HOME.
real_state() {
  local d
  for d in "$REAL_CONFIG_HOME" "$REAL_DATA_HOME" "$REAL_CACHE_HOME" "$REAL_STATE_HOME"; do
    [ -d "$d" ] && find "$d" -maxdepth 2 -iname '*lockdesk*' -printf '%p %T@\n' 2>/dev/null
  done | sort
}
REAL_CONFIG_HOME="${XDG_CONFIG_HOME:-$HOME/.config}"
REAL_DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
REAL_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
REAL_STATE_HOME="${XDG_STATE_HOME:-$HOME/.local/state}"
before_state="$(real_state)"

export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
export npm_config_cache="${npm_config_cache:-$HOME/.npm}"
export NPM_CONFIG_USERCONFIG="${NPM_CONFIG_USERCONFIG:-$HOME/.npmrc}"
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$REAL_CACHE_HOME/pip}"
[ -d "${PYENV_ROOT:-$HOME/.pyenv}" ] && export PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
[ -f "$HOME/.gitconfig" ] && export GIT_CONFIG_GLOBAL="${GIT_CONFIG_GLOBAL:-$HOME/.gitconfig}"
TEST_HOME="$(mktemp -d "${TMPDIR:-/tmp}/test-home.XXXXXX")"
trap 'rm -rf "$TEST_HOME"' EXIT
export HOME="$TEST_HOME"
export XDG_CONFIG_HOME="$TEST_HOME/.config" XDG_DATA_HOME="$TEST_HOME/.local/share"
export XDG_CACHE_HOME="$TEST_HOME/.cache" XDG_STATE_HOME="$TEST_HOME/.local/state"
# What a test left in the fresh home under a Lockdesk name (any depth, folders included).
test_home_state() { find "$TEST_HOME" -mindepth 1 -iname '*lockdesk*' 2>/dev/null | sed "s|^$TEST_HOME|~|" | sort; }

passed=0
failed=0
failures=()
# CPU seconds (user + system) used so far by the processes this shell has waited for: a step's
# share of the machine, beside its wall-clock time (docs/design/tooling.md, "CI time").
# (`times` in this shell, not in a `$(...)` subshell: a subshell has waited for nothing.)
cpu_now() {
  local f="$TEST_HOME/.times-$BASHPID"
  times >"$f"
  CPU_NOW="$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] } printf "%d", t }' "$f")"
  rm -f "$f"
}
step() {
  local name="$1"
  shift
  say "$name"
  local start=$SECONDS cpu status=0
  cpu_now
  cpu="$CPU_NOW"
  "$@" || status=$?
  cpu_now
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    printf '    ok: %s (%ss, %s CPU s)\n' "$name" $((SECONDS - start)) $((CPU_NOW - cpu)) >&2
  else
    failed=$((failed + 1))
    failures+=("$name")
    printf '    FAILED: %s (%ss, %s CPU s)\n' "$name" $((SECONDS - start)) $((CPU_NOW - cpu)) >&2
  fi
}

# Work started at the lowest CPU and I/O priority, whose result a later step waits for: on two
# cores the foreground steps seldom keep both busy (a build's serial tail, tests waiting on
# sockets, fsync and child servers), and the background work takes what they leave. Its output
# and its own CPU time are printed when it is waited for. It runs detached from this shell (a
# grandchild), so its CPU time is not counted in the foreground step during which it ends.
# `bg_start --nice N NAME ...` runs it at niceness N instead (the fuzz run: 10, so that it gets
# its cores for its seconds but yields to the end-to-end test beside it).
bg_start() {
  local nice=19
  if [ "$1" = --nice ]; then
    nice="$2"
    shift 2
  fi
  local name="$1"
  shift
  rm -f "$TEST_HOME/bg-$name.status"
  (
    (
      echo "$BASHPID" >"$TEST_HOME/bg-$name.pid"
      renice -n "$nice" -p "$BASHPID" >/dev/null
      [ "$nice" = 19 ] && ionice -c 3 -p "$BASHPID" 2>/dev/null
      start=$SECONDS
      status=0
      "$@" || status=$?
      cpu_now
      printf '    (%s ran in the background for %ss, %s CPU s)\n' "$name" $((SECONDS - start)) "$CPU_NOW"
      echo "$status" >"$TEST_HOME/bg-$name.status.part"
      mv "$TEST_HOME/bg-$name.status.part" "$TEST_HOME/bg-$name.status"
    ) >"$TEST_HOME/bg-$name.log" 2>&1 &
  )
}
bg_wait() {
  local name="$1" pid=""
  until [ -f "$TEST_HOME/bg-$name.status" ]; do
    [ -n "$pid" ] || pid="$(cat "$TEST_HOME/bg-$name.pid" 2>/dev/null)"
    # Gone without a status (killed): say so rather than wait for ever.
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null && [ ! -f "$TEST_HOME/bg-$name.status" ]; then
      cat "$TEST_HOME/bg-$name.log" >&2
      echo "    the background job '$name' ended without a result (killed?)" >&2
      return 1
    fi
    sleep 1
  done
  cat "$TEST_HOME/bg-$name.log" >&2
  return "$(cat "$TEST_HOME/bg-$name.status")"
}

# Stops a background job and everything it started (a run that stops early leaves none behind).
bg_kill() {
  kill_tree() {
    local p
    for p in $(pgrep -P "$1"); do kill_tree "$p"; done
    kill "$1" 2>/dev/null
  }
  local pid
  pid="$(cat "$TEST_HOME/bg-$1.pid" 2>/dev/null)" && [ -n "$pid" ] && kill_tree "$pid"
  return 0
}

ui() { (cd "$ROOT/ui" && npm run --silent "$@"); }

# Clippy's lints run inside the build itself: clippy-driver compiles the workspace's own crates
# (RUSTC_WORKSPACE_WRAPPER, exactly what `cargo clippy` sets up, with a build in place of its
# `check`), so the test build and the shipped binaries' build are also the lint runs of every
# target (libraries, binaries, unit and integration tests, examples) and no separate check
# build compiles every dependency a second time (docs/design/tooling.md, "CI time"). Every
# cargo command below runs with it: a command without it would rebuild the workspace's crates.
# Lints stay warnings while building, so that one lint does not stop the tests from running;
# `no_warnings` then fails the build step on any warning, clippy's or rustc's (`-D warnings`).
CLIPPY_DRIVER="$(rustc --print sysroot)/bin/clippy-driver"
if [ ! -x "$CLIPPY_DRIVER" ]; then
  say "installing clippy (rustup component add clippy)"
  rustup component add clippy >&2
fi
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER" CLIPPY_ARGS=""

# Runs a cargo command, fails on its status or on any warning or error it printed (a lint of
# clippy's or rustc's: cargo prints them again for a crate it finds fresh).
no_warnings() {
  local log="$TEST_HOME/cargo-$BASHPID.log" status
  "$@" 2>&1 | tee "$log"
  status="${PIPESTATUS[0]}"
  if grep -qE '^(warning|error)(\[[^]]*\])?: ' "$log"; then
    echo "    the build above printed warnings: they are errors here (clippy, -D warnings)" >&2
    status=1
  fi
  rm -f "$log"
  return "$status"
}

# Every test target of the workspace, built once (with clippy's lints, above).
build_tests() {
  no_warnings cargo nextest run --workspace --no-run --cargo-quiet
}

# CI keeps only the end of the output: the names of failed Rust tests and their panic lines are
# printed again in the summary at the end.
RUST_LOG_FILE="$TEST_HOME/rust-tests.log"
# cargo-nextest runs every test binary's tests at once, eight at a time (.config/nextest.toml:
# the tests mostly wait on sockets, servers and fsync), instead of one binary after the other;
# it runs no doctests, so `cargo test --doc` follows (the same build).
rust_tests() {
  local status=0
  cargo nextest run --workspace --no-fail-fast --cargo-quiet 2>&1 | tee "$RUST_LOG_FILE"
  status="${PIPESTATUS[0]}"
  cargo test -q --workspace --doc 2>&1 | tee -a "$RUST_LOG_FILE"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  return "$status"
}
bindings_are_fresh() {
  local out status
  out="$(cargo test -q --workspace --lib -- --exact tests::bindings_are_fresh 2>&1)"
  status=$?
  grep -v -E '^$|^running 0 tests$|test result: ok\. 0 passed' <<<"$out"
  # Not vacuous: the filter must have found the test.
  [ "$status" -eq 0 ] && grep -q 'test result: ok. 1 passed' <<<"$out"
}
rust_failures() {
  [ -f "$RUST_LOG_FILE" ] || return 0
  # nextest's lines for a failed, timed-out or crashed test, the panics, and cargo test's (doctests).
  grep -E -- '^ *(FAIL|TIMEOUT|SIGSEGV|SIGABRT|SIGKILL|ABORT|LEAK-FAIL) \[|^---- .* stdout ----$|panicked at|^error: test (run )?failed|^test result: FAILED' "$RUST_LOG_FILE" |
    awk '!seen[$0]++' | head -n 60
}

# The binaries the interop, README and end-to-end steps run (the CLI, the desk with its demo,
# the PostgreSQL sandbox), in the test build's features: `--tests` keeps the dev-dependencies'
# features (tokio `test-util`, tauri `test`), so nothing is compiled again but the desk's `main`.
# Those steps skip their own `cargo build` (LOCKDESK_BINS_BUILT). They are copied out of
# target/debug (target/run-bins), so that the production desk's build below, which runs beside
# them, cannot put another binary under their feet.
build_bins() {
  no_warnings cargo build -q --workspace --bins --tests || return 1
  local target="${CARGO_TARGET_DIR:-$ROOT/target}"
  rm -rf "$target/run-bins" && mkdir -p "$target/run-bins" &&
    cp "$target/debug/lockdesk" "$target/debug/lockdesk-cli" "$target/debug/lockdesk-pg-sandbox" \
      "$target/run-bins/" || return 1
  export LOCKDESK_BINS_BUILT=1 LOCKDESK_BIN_DIR="$target/run-bins"
  export LOCKDESK_APP="$LOCKDESK_BIN_DIR/lockdesk" LOCKDESK_CLI="$LOCKDESK_BIN_DIR/lockdesk-cli"
}

# The desk as it ships (`--no-default-features --features custom-protocol`: no demo, and none of
# the dev-dependencies' features: tokio `test-util`, tauri `test`, lockdesk-session `testing`),
# with clippy's lints: the production configuration compiles, warning-free, without a test
# feature. It rebuilds what sits on tokio (about 100 CPU s), so it runs beside the end-to-end
# test, whose cores are mostly idle, and no other cargo command runs meanwhile (the steps beside
# it run the copies above). Session 11 also built the default desk and the CLI this way, to run
# them: 50 CPU s more, in the run's critical path (docs/design/tooling.md, "CI time").
production_desk() {
  no_warnings cargo build -q -p lockdesk --no-default-features --features custom-protocol --bins
}

fuzz_all() {
  bg_wait fuzz-build || return 1
  bash fuzz/run.sh "${LOCKDESK_FUZZ_SECONDS:-20}" all
}

e2e() {
  # lookalike.test.mjs runs a real gateway and mints tokens with the CLI.
  [ -n "${LOCKDESK_BINS_BUILT:-}" ] || cargo build -q --workspace --bins || return 1
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

# The desktop app's `demo` feature (default) links the embedded demo; a production build
# (`--no-default-features --features custom-protocol`) must link none of it. `cargo tree` reads
# the graph without building anything. The default build must have it (the check is not vacuous).
no_demo_without_the_feature() {
  local without with
  without="$(cargo tree -q -p lockdesk --no-default-features --features custom-protocol -e normal,features)" || return 1
  with="$(cargo tree -q -p lockdesk -e normal,features)" || return 1
  if grep -E 'lockdesk-(demo|sim|gateway)|"standin"' <<<"$without"; then
    echo "the desk without its demo feature still links the above" >&2
    return 1
  fi
  grep -q 'lockdesk-demo' <<<"$with" || { echo "the default desk build lost its demo" >&2; return 1; }
}

# Started first, at the lowest priority, and waited for at the end (see bg_start): it needs
# neither the UI nor the workspace's build, and takes the cores the npm install below leaves.
# Started later (after the two builds, which keep both cores busy by themselves), it was starved
# by the tests and the window test and became the run's tail: 1,092 s against 1,031
# (docs/design/tooling.md).
[ -f fuzz/run.sh ] && bg_start fuzz-build bash fuzz/run.sh build

# The UI's packages, and the UI itself: the desktop binary embeds the built UI, so it is built
# before any cargo step. A failure here stops everything, as the set-up above does.
if ! { ensure_npm "$ROOT/ui" && ensure_npm "$ROOT/tests/e2e" && build_ui; }; then
  bg_kill fuzz-build
  die "the UI's npm packages or its build failed (above)"
fi

step "cargo fmt --check" cargo fmt --all --check
step "a desk built without the demo links no gateway, simulator or stand-in" no_demo_without_the_feature
step "build every test target, with clippy's lints (warnings are errors)" build_tests
step "rust tests" rust_tests
# The same features as the workspace run above (a `-p lockdesk-api` run would rebuild the crate
# and its dependents with other features: 75 s): only the lib test binaries, one test each.
step "bindings are fresh (ui/src/ipc/bindings.ts)" bindings_are_fresh
step "ui type check (svelte-check)" ui check
step "ui lint (eslint)" ui lint
step "ui unit tests (vitest)" ui test
step "the binaries the next steps run (the test build's features)" build_bins
# The end-to-end test mostly waits (the window, WebDriver, the demo's servers), and so do the
# interop and README steps: they run beside it, with the fuzz run once its build is done
# (niceness 10: it keeps its cores for its seconds but yields to the window). Their ports do not
# meet: the README's gateways and PostgreSQL listen on fixed ports (8080-8082, 55432), the
# end-to-end test's on ports the system picks, and tauri-driver on 4444. Each background step's
# output is printed when it is waited for, in this order.
[ -f tests/interop/run.sh ] && bg_start interop bash tests/interop/run.sh
bg_start production-desk production_desk
bg_start readme bash tests/readme/run.sh
[ -f fuzz/run.sh ] && bg_start --nice 10 fuzz fuzz_all
step "end to end: the real window under Xvfb" e2e
[ -f tests/interop/run.sh ] && step "interoperability (node jose, python jwcrypto)" bg_wait interop
step "README examples run as written" bg_wait readme
step "the desk as shipped (no demo, no test features) builds, with clippy's lints" bg_wait production-desk
if [ -f fuzz/run.sh ]; then
  # Every target (verifier, gateway bodies, desk apply, feed frames), 20 s each, two at a time,
  # on the build started in the background.
  step "fuzz every target (short run)" bg_wait fuzz
  [ -n "${CI:-}" ] && rm -rf "${FUZZ_TARGET_DIR:-$ROOT/fuzz/target}"
fi

after_state="$(real_state)"
home_state="$(test_home_state)"
if [ "$before_state" = "$after_state" ] && [ -z "$home_state" ]; then
  passed=$((passed + 1))
  printf '    ok: no test touched the Lockdesk folders of HOME (a fresh one) or the real ones\n' >&2
else
  failed=$((failed + 1))
  failures+=("hermeticity")
  [ -n "$home_state" ] &&
    printf '    FAILED: tests created Lockdesk files or folders in HOME (a fresh, empty one):\n%s\n' \
      "$home_state" >&2
  [ "$before_state" != "$after_state" ] &&
    printf '    FAILED: tests touched the real Lockdesk folders:\n%s\n' \
      "$(diff <(echo "$before_state") <(echo "$after_state"))" >&2
fi

echo
details="$(rust_failures)"
[ -n "$details" ] && printf 'rust test failures (from the rust tests step):\n%s\n' "$details"
for f in "${failures[@]:-}"; do [ -n "$f" ] && echo "failed step: $f"; done
echo "steps: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
