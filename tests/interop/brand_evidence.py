"""A brand backend's evidence step, with Python's jwcrypto (docs/integration.md, "Posting evidence").

When a signed-in visitor's page activates iAdvize, the backend mints TWO tokens from the same
claims, both signed with the brand's key:
  - one encrypted to iAdvize's public key, handed to the iAdvize tag (iAdvize.activate);
  - one encrypted to the desks' public key, posted to the gateway with iAdvize's visitorId.
iAdvize cannot pass its token on (it is sealed to iAdvize), so the second one is what a desk
verifies. This file is a sample to copy; the test of docs/integration.md runs it as is against a
real gateway (tests/interop/brand_samples.sh). Only jwcrypto and the standard library.

  GATEWAY_URL=https://gateway.example.com LOCKDESK_PROVIDER_CREDENTIAL=... \
  BRAND_PRIVATE_KEY=brand-private.pem DESKS_PUBLIC_KEY=desks-public.pem ISSUER=https://shop.example \
  python brand_evidence.py VISITOR_ID USER_ID [CONVERSATION_ID]

Prints the gateway's answer ({"seq": N}) on stdout; exits 1 with the reason on stderr otherwise.
"""
import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from jwcrypto import jwe, jwk, jws

# iAdvize's production encryption key as iAdvize publishes it (bare base64 DER, no PEM armour).
IADVIZE_PUBLIC_KEY_B64 = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1KdAzuUa5rOXgLHavoDRYoNXzwWz/pFhgGypYFbvV8DNjB93XK2AzKTwW+vxT7RYl4f+"
    "sKLdEi3dJYgPt2hquhTNmFxAzRvTuolUOKr1XNx7QbDj+7cfLVDYjmds/ydNtyHi8TUHSvfzs8SGXO5E5H13llmayPEslHKShG0cLIDcLNr6hJcf"
    "v9fvOZqQlLQ4Bx7to/66IHke9zY+1oidrUdFGzxXG+RGK81mIMuXj6N2EGJ7YYcQqXJfBJnWFlSGCQNttw5Rfj00eZbkMRO3XohhNqGIiBG2tejSj"
    "fB53UpiHdbzni+tyB72R5aaq4d+gkkgaOVYn/Or2fArOH2FUQIDAQAB"
)


def pem_from_base64(b64):
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return ("-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n").encode()


def mint_token(brand_private_pem, recipient_pem, issuer, user_id, visitor_data=None, lifetime_secs=60):
    """iAdvize's format: a JWS (RS256, brand key) inside a JWE (RSA-OAEP-256 + A256GCM) to the recipient."""
    claims = {"https://iadvize.com/userId": user_id, "iss": issuer, "exp": int(time.time()) + lifetime_secs}
    if visitor_data:
        claims["https://iadvize.com/visitorData"] = visitor_data
    signed = jws.JWS(json.dumps(claims).encode())
    signed.add_signature(jwk.JWK.from_pem(brand_private_pem), alg="RS256", protected=json.dumps({"alg": "RS256"}))
    header = {"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT"}
    sealed = jwe.JWE(signed.serialize(compact=True).encode(), protected=json.dumps(header))
    sealed.add_recipient(jwk.JWK.from_pem(recipient_pem))
    return sealed.serialize(compact=True)


def tokens_for_visitor(brand_private_pem, desks_public_pem, issuer, user_id, visitor_data=None):
    """Both tokens for one activation: 'for_iadvize' goes to the page, 'for_desks' to the gateway."""
    return {
        "for_iadvize": mint_token(brand_private_pem, pem_from_base64(IADVIZE_PUBLIC_KEY_B64), issuer, user_id, visitor_data),
        "for_desks": mint_token(brand_private_pem, desks_public_pem, issuer, user_id, visitor_data),
    }


def post_evidence(gateway_url, credential, visitor_id, token, conversation_id=None, source=None):
    """POST /v1/evidence (docs/gateway.md): 202 {"seq": N} once stored durably."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    body = {"visitorId": visitor_id, "token": token, "presentedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if conversation_id:
        body["conversationId"] = conversation_id
    if source:
        body["source"] = source
    request = urllib.request.Request(
        urllib.parse.urljoin(gateway_url, "/v1/evidence"),
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + credential, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode(errors="replace")
    # 503 storage_unavailable is worth a retry; 4xx is a bug or a wrong credential: do not retry.
    if status != 202:
        raise RuntimeError(f"gateway answered {status}: {text[:300]}")
    return json.loads(text)


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def main(argv):
    if len(argv) not in (2, 3):
        raise RuntimeError("usage: python brand_evidence.py VISITOR_ID USER_ID [CONVERSATION_ID]")
    visitor_id, user_id = argv[0], argv[1]
    conversation_id = argv[2] if len(argv) == 3 else None
    with open(env("BRAND_PRIVATE_KEY"), "rb") as f:
        brand_private_pem = f.read()
    with open(env("DESKS_PUBLIC_KEY"), "rb") as f:
        desks_public_pem = f.read()
    tokens = tokens_for_visitor(brand_private_pem, desks_public_pem, env("ISSUER"), user_id, {"firstName": "Alan"})
    # A real backend returns tokens["for_iadvize"] to the page (iAdvize.activate); here it is only
    # checked to be a compact JWE, since only iAdvize can open it.
    if len(tokens["for_iadvize"].split(".")) != 5:
        raise RuntimeError("the token for iAdvize is not a compact JWE")
    answer = post_evidence(
        env("GATEWAY_URL"),
        env("LOCKDESK_PROVIDER_CREDENTIAL"),
        visitor_id,
        tokens["for_desks"],
        conversation_id,
        {"domain": "shop.example", "device": "desktop", "app": "web"},
    )
    print(json.dumps(answer))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # noqa: BLE001 - a sample's command line: say why and exit 1
        print(f"brand_evidence: {e}", file=sys.stderr)
        sys.exit(1)
