#!/usr/bin/env bash
# Runs Lockdesk on this machine: installs what is missing, builds the UI and the app, launches it.
# Without a display it says so and shows the headless CLI instead.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_app_build_deps
build_ui

if ! has_display; then
  say "building the headless CLI"
  cargo build --release -q -p lockdesk-cli
  cat >&2 <<MSG

No display found: DISPLAY and WAYLAND_DISPLAY are both empty, so the Lockdesk window cannot open
here. Run this command from a desktop session (or over ssh -X). Everything else works headless
through lockdesk-cli ($ROOT/target/release/lockdesk-cli):

MSG
  exec "$ROOT/target/release/lockdesk-cli" --help
fi

say "building Lockdesk (release)"
cargo build --release -q -p lockdesk
say "starting Lockdesk"
exec "$ROOT/target/release/lockdesk" "$@"
