# The integration guide's samples (docs/integration.md) against the real gateway and a real desk.
# Sourced by run.sh after its set-up: uses $CLI, $PY, $W (keys brand/, desk/, other/), ok and ko.
#
# Starts `lockdesk-cli gateway` on a free port with a temporary configuration, plays iAdvize's
# v2.conversation.pushed webhooks (signed with the app secret), runs brand_evidence.mjs (jose)
# and brand_evidence.py (jwcrypto) exactly as a brand backend runs them, and checks with
# `lockdesk-cli watch` (the desk core, the desk's private key) that each conversation turns
# secured with the userId the sample signed; a token signed by another key turns failed, never
# secured; evidence naming the conversation secures it even under another visitor id; a wrong
# provider credential is refused and the sample says so.

BS_SECRET="integration-app-secret"
BS_PROVIDER="provider-credential-integration-0001"
BS_DESK="subscriber-credential-integration-0001"
BS_ISS="https://shop.example"
mkdir -p "$W/gw" "$W/desk-data"
cat > "$W/gw/gateway.toml" <<TOML
[[webhook]]
name = "main-site"
secret = "$BS_SECRET"
[[provider]]
name = "brand-backend"
credential = "$BS_PROVIDER"
[[subscriber]]
name = "alice"
credential = "$BS_DESK"
role = "advisor"
operator_ids = [101]
TOML
chmod 600 "$W/gw/gateway.toml"

bs_gw_pid=""
bs_watch_pid=""
bs_stop() {
  [ -n "$bs_watch_pid" ] && kill "$bs_watch_pid" 2>/dev/null && wait "$bs_watch_pid" 2>/dev/null
  [ -n "$bs_gw_pid" ] && kill "$bs_gw_pid" 2>/dev/null && wait "$bs_gw_pid" 2>/dev/null
  bs_watch_pid=""
  bs_gw_pid=""
}
trap 'bs_stop; rm -rf "$W"' EXIT

# wait_for FILE PATTERN: until FILE holds a line matching PATTERN (at most 30 s).
bs_wait_for() {
  local i
  for i in $(seq 300); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# iAdvize's delivery: v2.conversation.pushed, signed `sha256=<HMAC-SHA256 of the body>`.
bs_pushed() {
  node -e '
    const [url, secret, conv, visitor] = process.argv.slice(1);
    const body = JSON.stringify({
      eventId: crypto.randomUUID(), eventType: "v2.conversation.pushed", platform: "ha", clientId: 1,
      createdAt: new Date().toISOString(), sentAt: new Date().toISOString(), projectId: 1,
      conversationId: conv, operatorId: 101, channel: "CHAT", visitorId: visitor, visitorExternalId: null });
    const sig = require("node:crypto").createHmac("sha256", secret).update(body).digest("hex");
    fetch(url + "/webhooks/iadvize", { method: "POST", body,
      headers: { "content-type": "application/json", "x-iadvize-signature": "sha256=" + sig } })
      .then(async r => { if (r.status !== 200) { console.error(r.status, await r.text()); process.exit(1); } });
  ' "$BS_URL" "$BS_SECRET" "$1" "$2"
}

# The samples, run as a brand backend would (configuration in the environment).
bs_sample() {
  local who="$1" brand_key="$2" credential="$3"
  shift 3
  local run=(node "$HERE/brand_evidence.mjs")
  [ "$who" = jwcrypto ] && run=("$PY" "$HERE/brand_evidence.py")
  GATEWAY_URL="$BS_URL" LOCKDESK_PROVIDER_CREDENTIAL="$credential" BRAND_PRIVATE_KEY="$brand_key" \
    DESKS_PUBLIC_KEY="$W/desk/public.pem" ISSUER="$BS_ISS" "${run[@]}" "$@"
}

# The desk's line for a conversation: "<state>:<userId>" of its last change, from watch --json.
bs_desk_state() {
  node -e '
    const lines = require("node:fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
    const mine = lines.map(l => JSON.parse(l)).filter(j => j.conversationId === process.argv[2] && j.state);
    const last = mine[mine.length - 1];
    console.log(last ? `${last.state}:${last.userId ?? last.reason ?? "-"}` : "none");
    if (mine.some(j => j.state === "secured") && process.argv[3] === "never-secured") process.exit(3);
  ' "$W/watch.out" "$@"
}

echo "== brand samples -> gateway -> desk (docs/integration.md)"
"$CLI" gateway --listen 127.0.0.1:0 --data "$W/gw" >"$W/gw.out" 2>"$W/gw.err" &
bs_gw_pid=$!
if ! bs_wait_for "$W/gw.out" '^listening on '; then
  ko "gateway starts" "$(tail -5 "$W/gw.err")"
  bs_stop
  return 0
fi
BS_ADDR="$(sed -n 's/^listening on //p' "$W/gw.out" | head -1)"
BS_URL="http://$BS_ADDR"
LOCKDESK_FEED_CREDENTIAL="$BS_DESK" "$CLI" watch --feed "ws://$BS_ADDR/v1/feed" \
  --trust "$BS_ISS=$W/brand/public.pem" --decrypt-key "$W/desk/private.pem" \
  --data "$W/desk-data" --json >"$W/watch.out" 2>"$W/watch.err" &
bs_watch_pid=$!

# jose: evidence at page load, before the conversation is pushed (the usual order).
out="$(bs_sample jose "$W/brand/private.pem" "$BS_PROVIDER" visitor-node user-node 2>&1)"
if printf '%s' "$out" | grep -q '^{"seq":[0-9]*}$'; then ok "jose sample: evidence accepted ($out)"; else ko "jose sample posts evidence" "$out"; fi
bs_pushed conv-node visitor-node || ko "webhook conv-node" "refused"
# jwcrypto: the conversation first, then the evidence naming it.
bs_pushed conv-py visitor-py || ko "webhook conv-py" "refused"
out="$(bs_sample jwcrypto "$W/brand/private.pem" "$BS_PROVIDER" visitor-py user-py conv-py 2>&1)"
if printf '%s' "$out" | grep -q '^{"seq": [0-9]*}$'; then ok "jwcrypto sample: evidence accepted ($out)"; else ko "jwcrypto sample posts evidence" "$out"; fi
# The page's visitor id differs from the webhook's (docs/integration.md, section 2): the evidence
# naming the conversation still secures it.
bs_pushed conv-vuid visitor-from-webhook || ko "webhook conv-vuid" "refused"
out="$(bs_sample jose "$W/brand/private.pem" "$BS_PROVIDER" vuid-from-page user-vuid conv-vuid 2>&1)"
printf '%s' "$out" | grep -q '^{"seq":' || ko "evidence for conv-vuid posted" "$out"
# A token signed with a key the desk does not trust: relayed by the gateway, refused by the desk.
bs_pushed conv-forged visitor-forged || ko "webhook conv-forged" "refused"
out="$(bs_sample jose "$W/other/private.pem" "$BS_PROVIDER" visitor-forged user-node conv-forged 2>&1)"
printf '%s' "$out" | grep -q '^{"seq":' || ko "forged evidence posted" "$out"
# A wrong provider credential: 401, and the sample says so.
out="$(bs_sample jwcrypto "$W/brand/private.pem" "not-the-provider-credential" visitor-py user-py 2>&1)"; rc=$?
if [ $rc -ne 0 ] && printf '%s' "$out" | grep -q 'gateway answered 401'; then ok "wrong credential refused (401)"; else ko "wrong credential refused" "rc=$rc $out"; fi

for conv in conv-node conv-py conv-vuid conv-forged; do
  bs_wait_for "$W/watch.out" "\"conversationId\":\"$conv\".*\"state\":\"\(secured\|failed\)\"" || true
done
got="$(bs_desk_state conv-node)"
[ "$got" = "secured:user-node" ] && ok "desk: jose evidence secures conv-node" || ko "desk: jose evidence secures conv-node" "got $got; $(tail -3 "$W/watch.err")"
got="$(bs_desk_state conv-py)"
[ "$got" = "secured:user-py" ] && ok "desk: jwcrypto evidence secures conv-py" || ko "desk: jwcrypto evidence secures conv-py" "got $got"
got="$(bs_desk_state conv-vuid)"
[ "$got" = "secured:user-vuid" ] && ok "desk: evidence naming the conversation secures it (other visitor id)" || ko "desk: evidence naming conv-vuid" "got $got"
got="$(bs_desk_state conv-forged never-secured)"; rc=$?
case "$got" in
  failed:*) [ $rc -eq 0 ] && ok "desk: evidence signed by another key fails ($got)" || ko "desk: forged evidence" "was secured at some point" ;;
  *) ko "desk: evidence signed by another key fails" "got $got" ;;
esac
# The evidence reached the log: 4 accepted (the 401 stored nothing).
metrics="$(node -e 'fetch(process.argv[1] + "/metrics").then(r => r.text()).then(t => console.log(t))' "$BS_URL")"
if printf '%s\n' "$metrics" | grep -q '^lockdesk_gateway_ingested_total{kind="evidence"} 4$'; then
  ok "gateway stored exactly the 4 accepted presentations"
else
  ko "gateway stored exactly the 4 accepted presentations" "$(printf '%s\n' "$metrics" | grep ingested)"
fi
bs_stop
