#!/usr/bin/env bash
# Builds the Linux .deb (the desktop app and lockdesk-cli, release builds) and checks it with
# tests/package/check.sh: both programs in /usr/bin, the desktop entry, hicolor icons at their
# standard sizes, Depends, and the shipped lockdesk-cli running. Prints the package's path and
# sizes. Takes minutes (release builds with LTO); not part of scripts/test.sh.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_app_build_deps
say "building the .deb (release; tauri.conf.json builds lockdesk-cli before bundling)"
ui/node_modules/.bin/tauri build --bundles deb >&2
version="$(node -p 'require("./tauri.conf.json").version')"
deb="$ROOT/target/release/bundle/deb/Lockdesk_${version}_amd64.deb"
say "checking $deb"
bash tests/package/check.sh "$deb"
