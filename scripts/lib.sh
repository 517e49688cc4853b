# Shared by the scripts in scripts/ (run, test, package, the benchmarks): find or install what
# Lockdesk needs.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# What the desktop app needs to build and run on Debian/Ubuntu.
RUN_PACKAGES=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev
  libssl-dev libxdo-dev build-essential pkg-config file)
# What the tests add: a virtual display, the WebKit WebDriver, a session bus and a notification
# daemon (notifications are observed through dunst's history); python3-venv for the interop
# tests' pinned jwcrypto; postgresql-15 for the gateway's PostgreSQL store tests (the tests start
# their own server in a temporary folder, as nobody when run as root); nginx for the TLS load
# balancer in front of two gateway instances (started by the test in a temporary folder); curl posts through it.
# libsqlite3-dev: the fuzz build links Debian's SQLite (fuzz/run.sh).
TEST_PACKAGES=(xvfb xauth webkit2gtk-driver dbus-x11 dunst libnotify-bin imagemagick python3-venv
  postgresql-15 nginx curl libsqlite3-dev)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

missing_packages() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

# Installs missing Debian packages when we can (root, or sudo without a password); otherwise
# prints the exact command and stops.
ensure_packages() {
  if [ "$(uname -s)" != Linux ]; then return 0; fi
  if ! command -v dpkg-query >/dev/null; then
    say "not a Debian/Ubuntu system: install the WebKitGTK 4.1, GTK 3, appindicator, librsvg, OpenSSL and xdo development packages (see README.md)"
    return 0
  fi
  local missing
  missing="$(missing_packages "$@")"
  [ -z "$missing" ] && return 0
  local cmd="apt-get install -y --no-install-recommends $missing"
  if [ "$(id -u)" = 0 ]; then
    say "installing system packages: $missing"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive $cmd -qq) >&2 || die "apt-get failed; run: $cmd"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    say "installing system packages with sudo: $missing"
    (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive $cmd -qq) >&2 || die "apt-get failed; run: sudo $cmd"
  else
    die "these system packages are missing; run this, then try again:
    sudo apt-get update && sudo $cmd"
  fi
}

ensure_tools() {
  command -v cargo >/dev/null || die "Rust is not installed: see https://rustup.rs (Lockdesk needs Rust 1.85 or newer)"
  command -v node >/dev/null || die "Node.js 20 or newer is required (node was not found)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "Node.js 20 or newer is required (found $(node --version))"
}

# npm packages from the committed lockfile, with `npm ci` (the lockfile lists every platform's
# optional packages, e.g. @tauri-apps/cli-darwin-arm64: a lockfile without them is "not in sync"
# for `npm ci`). Should a mirror still refuse it, `npm install --no-save` installs from the
# lockfile without rewriting it, so the checkout stays clean. Skipped when node_modules was
# installed after the lockfile last changed.
ensure_npm() {
  local dir="$1"
  if [ -f "$dir/node_modules/.package-lock.json" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    return 0
  fi
  say "installing npm packages in ${dir#"$ROOT"/}"
  (cd "$dir" && { npm ci --no-audit --no-fund --loglevel=error ||
    { say "npm ci failed; installing from the lockfile without changing it"; npm install --no-save --no-audit --no-fund --loglevel=error; }; }) >&2
}

# What the desktop app needs to build (scripts/run.sh, scripts/package.sh): the tools, the
# system packages and the UI's npm packages.
ensure_app_build_deps() {
  ensure_tools
  ensure_packages "${RUN_PACKAGES[@]}"
  ensure_npm "$ROOT/ui"
}

# Prints the first UI input newer than the built ui/dist/index.html (nothing when the build is
# current): sources, public files, index.html, the package and build configuration.
ui_changed_since_build() {
  local built="$ROOT/ui/dist/index.html"
  [ -f "$built" ] || { echo "ui/dist/index.html"; return 0; }
  (cd "$ROOT/ui" && find src public index.html package.json package-lock.json vite.config.ts \
    svelte.config.js tsconfig.json -newer "$built" -print 2>/dev/null | head -n 1) || true
}

# Builds the UI unless ui/dist is newer than every input (LOCKDESK_FORCE_UI_BUILD=1 forces it).
# An unchanged dist also keeps cargo's build of the app a no-op (tauri embeds ui/dist).
build_ui() {
  local changed
  changed="$(ui_changed_since_build)"
  if [ -z "$changed" ] && [ "${LOCKDESK_FORCE_UI_BUILD:-0}" != 1 ]; then
    say "the UI is up to date (ui/dist is newer than its sources)"
    return 0
  fi
  say "building the UI (${changed:-forced}: newer than the last build, or no build yet)"
  (cd "$ROOT/ui" && npm run --silent build) >&2
}

has_display() {
  case "$(uname -s)" in
    Linux|*BSD) [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ] ;;
    *) return 0 ;;
  esac
}
