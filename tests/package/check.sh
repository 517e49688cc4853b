#!/usr/bin/env bash
# Checks a built Lockdesk .deb: what it installs, where, what it depends on, and that the shipped
# binaries run. Usage: tests/package/check.sh target/release/bundle/deb/Lockdesk_<v>_amd64.deb
# (scripts/package.sh builds the package and runs this.) Exit status 0 only when every check passed.
set -uo pipefail
deb="${1:?usage: check.sh PATH.deb}"
[ -f "$deb" ] || { echo "no such package: $deb" >&2; exit 2; }
failed=0
fail() { echo "FAILED: $*" >&2; failed=$((failed + 1)); }
ok() { echo "ok: $*"; }

# "MODE PATH" per entry, the path without the leading "./" some tar writers add.
listing="$(dpkg-deb -c "$deb" | awk '{p = $NF; sub(/^\.\//, "", p); print $1, p}')"
has() { grep -qE "^$1 $2\$" <<<"$listing"; }

# Both programs, executable, on PATH.
for bin in lockdesk lockdesk-cli; do
  if has '-rwxr-xr-x' "usr/bin/$bin"; then ok "/usr/bin/$bin (0755)"; else fail "/usr/bin/$bin missing or not 0755"; fi
done

# The desktop entry, and icons only in the freedesktop hicolor theme's standard size folders
# (no "@2" scale folders: a 256 px icon is 256x256, not 128x128@2).
desktop="$(grep -oE 'usr/share/applications/[^ ]+\.desktop$' <<<"$listing")"
[ -n "$desktop" ] && ok "desktop entry /$desktop" || fail "no .desktop file under /usr/share/applications"
for size in 32x32 64x64 128x128 256x256 512x512; do
  if has '-rw-r--r--' "usr/share/icons/hicolor/$size/apps/lockdesk.png"; then ok "icon $size"; else fail "icon hicolor/$size/apps/lockdesk.png missing"; fi
done
odd_icons="$(grep -E ' usr/share/icons/' <<<"$listing" | grep -vE ' usr/share/icons(/hicolor(/([0-9]+)x\3(/apps(/lockdesk\.png)?)?)?)?/?$')"
[ -z "$odd_icons" ] && ok "no icon outside hicolor/<N>x<N>/apps" || fail "icons in non-standard folders: $odd_icons"

# Dependencies: the web view and GTK the window needs.
depends="$(dpkg-deb -f "$deb" Depends)"
# The tray icon loads libayatana-appindicator3 at run time (dlopen): without it the desk has no
# tray, so the package depends on it too.
for dep in libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1; do
  grep -q "$dep" <<<"$depends" && ok "depends on $dep" || fail "Depends lacks $dep ($depends)"
done

# Unpacked into a scratch root: the entry points at the installed program and icon, and the
# shipped command-line tool runs.
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
if [ -n "$desktop" ]; then
  entry="$root/$desktop"
  grep -qx 'Exec=lockdesk' "$entry" && ok "Exec=lockdesk" || fail "desktop entry Exec is $(grep '^Exec=' "$entry")"
  grep -qx 'Icon=lockdesk' "$entry" && ok "Icon=lockdesk" || fail "desktop entry Icon is $(grep '^Icon=' "$entry")"
  grep -qE '^Categories=.+' "$entry" && ok "$(grep '^Categories=' "$entry")" || fail "desktop entry has no Categories"
fi
if version="$("$root/usr/bin/lockdesk-cli" --version 2>&1)"; then ok "shipped lockdesk-cli runs: $version"; else fail "shipped lockdesk-cli --version: $version"; fi
for bin in lockdesk lockdesk-cli; do
  if readelf -S "$root/usr/bin/$bin" | grep -q '\.debug_info'; then fail "$bin carries debug info"; else ok "$bin has no debug info"; fi
done

printf 'package %s: %s bytes; lockdesk %s bytes, lockdesk-cli %s bytes\n' "$(basename "$deb")" \
  "$(stat -c %s "$deb")" "$(stat -c %s "$root/usr/bin/lockdesk")" "$(stat -c %s "$root/usr/bin/lockdesk-cli")"
[ "$failed" -eq 0 ] || { echo "$failed check(s) failed" >&2; exit 1; }
