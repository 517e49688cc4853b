#!/usr/bin/env bash
# Interoperability with two independent JOSE implementations, in both directions:
#   Node's `jose` and Python's `jwcrypto` mint tokens that lockdesk-cli must verify (or reject
#   with the right code), and lockdesk-cli mints tokens both must verify; then the integration
#   guide's brand samples (brand_evidence.mjs, brand_evidence.py) post evidence to a real gateway
#   and a real desk must show it secured (brand_samples.sh).
# Installs what it needs (npm, a venv with the pinned PyPI packages) and FAILS, never skips, when
# node, python or the packages are unavailable. Last line: `interop: N passed, M failed`.
#
# Usage: bash tests/interop/run.sh        (LOCKDESK_CLI=path overrides the binary)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
pass=0
failed=0

die() {
  echo "interop: $*" >&2
  echo "interop: $pass passed, $((failed + 1)) failed"
  exit 1
}

command -v node >/dev/null || die "node is required (Node.js 20 or later)"
command -v npm >/dev/null || die "npm is required"
command -v python3 >/dev/null || die "python3 is required"

cd "$HERE" || die "cannot enter $HERE"
npm install --no-audit --no-fund --loglevel=error >/dev/null || die "npm install failed"
node -e "import('jose').then(() => process.exit(0), () => process.exit(1))" || die "the jose package is not importable"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv || die "cannot create a Python venv (is python3-venv installed?)"
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt || die "pip install -r requirements.txt failed"
.venv/bin/python -c "import jwcrypto" || die "jwcrypto is not importable"
PY="$HERE/.venv/bin/python"

if [ -z "${LOCKDESK_CLI:-}" ]; then
  # Every binary, as the README and end-to-end tests build them: one feature set, one build of
  # the dependencies in a full test run (a `-p` selection unifies features differently).
  # scripts/test.sh has built them already (LOCKDESK_BINS_BUILT).
  if [ -z "${LOCKDESK_BINS_BUILT:-}" ]; then
    (cd "$ROOT" && cargo build -q --workspace --bins) || die "cannot build lockdesk-cli"
  fi
  LOCKDESK_CLI="${CARGO_TARGET_DIR:-$ROOT/target}/debug/lockdesk-cli"
fi
[ -x "$LOCKDESK_CLI" ] || die "no lockdesk-cli binary at $LOCKDESK_CLI"
CLI="$LOCKDESK_CLI"

W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
for k in brand desk other; do
  "$CLI" keys generate --out "$W/$k" >/dev/null || die "keys generate failed"
done
ISS="https://interop.example"
NOW="$(date +%s)"

ok() { pass=$((pass + 1)); echo "ok   $1"; }
ko() { failed=$((failed + 1)); echo "FAIL $1: $2"; }

# lockdesk_expect NAME TOKEN EXPECTED [extra verify flags...]
#   EXPECTED is "verified:<format>" or a rejection code.
lockdesk_expect() {
  local name="$1" token="$2" expected="$3"
  shift 3
  if [ -z "$token" ]; then ko "$name" "no token was minted"; return; fi
  local out
  out="$("$CLI" verify --json --trust "$ISS=$W/brand/public.pem" --decrypt-key "$W/desk/private.pem" \
    --now "$NOW" "$@" "$token")"
  local got
  got="$(printf '%s' "$out" | node -e '
    let s = ""; process.stdin.on("data", d => s += d).on("end", () => {
      const j = JSON.parse(s);
      console.log(j.verdict === "verified" ? `verified:${j.format}:${j.userId}` : j.reason);
    });')"
  case "$expected" in
    verified:*) [ "$got" = "$expected:user-interop" ] && ok "$name" || ko "$name" "expected $expected, got $got" ;;
    *) [ "$got" = "$expected" ] && ok "$name" || ko "$name" "expected $expected, got $got" ;;
  esac
}

jose_mint() { node jose.mjs mint "$1" "$2" "$ISS" user-interop "$NOW" "${3:-nested}"; }
jwc_mint() { "$PY" jwcrypto_interop.py mint "$1" "$2" "$ISS" user-interop "$NOW" "${3:-nested}"; }
B="$W/brand/private.pem"; D="$W/desk/public.pem"; O="$W/other/private.pem"; OD="$W/other/public.pem"

echo "== jose -> lockdesk"
lockdesk_expect "jose nested (cty JWT)" "$(jose_mint "$B" "$D")" verified:jwe
lockdesk_expect "jose nested without cty" "$(jose_mint "$B" "$D" nested-no-cty)" verified:jwe
lockdesk_expect "jose nested with kid" "$(jose_mint "$B" "$D" nested-kid)" verified:jwe
lockdesk_expect "jose bare JWS" "$(jose_mint "$B" "$D" jws)" verified:jws
lockdesk_expect "jose bare JWS, encryption required" "$(jose_mint "$B" "$D" jws)" encryption_required --require-encryption
lockdesk_expect "jose A128GCM" "$(jose_mint "$B" "$D" a128gcm)" unsupported_algorithm
lockdesk_expect "jose RSA-OAEP (SHA-1)" "$(jose_mint "$B" "$D" rsa-oaep)" unsupported_algorithm
lockdesk_expect "jose signed by another key" "$(jose_mint "$O" "$D")" bad_signature
lockdesk_expect "jose encrypted to another desk" "$(jose_mint "$B" "$OD")" decryption_failed
lockdesk_expect "jose nested, trust as JWK" "$(jose_mint "$B" "$D")" verified:jwe --trust "$ISS=$W/brand/public.jwk"

echo "== jwcrypto -> lockdesk"
lockdesk_expect "jwcrypto nested (cty JWT)" "$(jwc_mint "$B" "$D")" verified:jwe
lockdesk_expect "jwcrypto nested without cty" "$(jwc_mint "$B" "$D" nested-no-cty)" verified:jwe
lockdesk_expect "jwcrypto bare JWS" "$(jwc_mint "$B" "$D" jws)" verified:jws
lockdesk_expect "jwcrypto A128GCM" "$(jwc_mint "$B" "$D" a128gcm)" unsupported_algorithm
lockdesk_expect "jwcrypto duplicate iss" "$(jwc_mint "$B" "$D" dup-claims)" duplicate_member
lockdesk_expect "jwcrypto signed by another key" "$(jwc_mint "$O" "$D")" bad_signature

echo "== lockdesk -> jose, jwcrypto"
# other_expect NAME VERIFIER(jose|jwcrypto) TOKEN BRAND_PUBLIC should(pass|fail)
other_expect() {
  local name="$1" who="$2" token="$3" brand_pub="$4" should="$5" out rc
  if [ "$who" = jose ]; then
    out="$(node jose.mjs verify "$token" "$W/desk/private.pem" "$brand_pub" "$ISS" "$NOW" 2>&1)"; rc=$?
  else
    out="$("$PY" jwcrypto_interop.py verify "$token" "$W/desk/private.pem" "$brand_pub" "$ISS" "$NOW" 2>&1)"; rc=$?
  fi
  if [ "$should" = pass ]; then
    [ $rc -eq 0 ] && printf '%s' "$out" | grep -q '"userId":"user-interop"\|"userId": "user-interop"' && ok "$name" || ko "$name" "$out"
  else
    [ $rc -ne 0 ] && ok "$name" || ko "$name" "accepted a token it should refuse: $out"
  fi
}
ld_mint() {
  "$CLI" token mint --signing-key "$1" --encrypt-to "$2" --issuer "$ISS" --user-id user-interop --now "$NOW" "${@:3}"
}
T1="$(ld_mint "$B" "$D")"
T2="$(ld_mint "$B" "$D" --kid brand-1 --encryption-kid desk-1 --iat --visitor-data '{"firstName":"Ada"}')"
# The desk's public key in the bare base64 form iAdvize publishes its own key in.
grep -v -- '-----' "$D" | tr -d '\n' > "$W/desk.b64"
T3="$(ld_mint "$B" "$(cat "$W/desk.b64")")"
T4="$(ld_mint "$O" "$D")"
for who in jose jwcrypto; do
  other_expect "lockdesk nested -> $who" "$who" "$T1" "$W/brand/public.pem" pass
  other_expect "lockdesk nested with kids and iat -> $who" "$who" "$T2" "$W/brand/public.pem" pass
  other_expect "lockdesk nested to a bare base64 key -> $who" "$who" "$T3" "$W/brand/public.pem" pass
  other_expect "lockdesk token, wrong brand key -> $who refuses" "$who" "$T1" "$W/other/public.pem" fail
  other_expect "lockdesk token by another signer -> $who refuses" "$who" "$T4" "$W/brand/public.pem" fail
done
lockdesk_expect "lockdesk round trip" "$T1" verified:jwe

# docs/integration.md's brand samples against the real gateway and desk.
source "$HERE/brand_samples.sh"

echo "interop: $pass passed, $failed failed"
[ "$failed" -eq 0 ]
