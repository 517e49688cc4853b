"""Interop with Python's jwcrypto: mints tokens in iAdvize's format and verifies Lockdesk-minted
ones. Keys are PEM files; the token goes to stdout, diagnostics to stderr.

  python jwcrypto_interop.py mint   BRAND_PRIVATE_PEM DESK_PUBLIC_PEM ISSUER USER_ID NOW [VARIANT]
  python jwcrypto_interop.py verify TOKEN DESK_PRIVATE_PEM BRAND_PUBLIC_PEM ISSUER NOW

VARIANT: nested (default), nested-no-cty, jws, a128gcm, dup-claims.
"""
import json
import sys

from jwcrypto import jwe, jwk, jws


def key(path):
    with open(path, "rb") as f:
        return jwk.JWK.from_pem(f.read())


def mint(brand_priv, desk_pub, issuer, user_id, now, variant="nested"):
    now = int(now)
    claims = json.dumps(
        {
            "https://iadvize.com/userId": user_id,
            "https://iadvize.com/visitorData": {"firstName": "Alan", "city": "Nantes"},
            "iss": issuer,
            "exp": now + 60,
        }
    )
    if variant == "dup-claims":
        claims = claims[:-1] + ', "iss": "https://evil.example"}'
    signed = jws.JWS(claims.encode())
    signed.add_signature(key(brand_priv), alg="RS256", protected=json.dumps({"alg": "RS256"}))
    token = signed.serialize(compact=True)
    if variant == "jws":
        return token
    header = {"alg": "RSA-OAEP-256", "enc": "A128GCM" if variant == "a128gcm" else "A256GCM"}
    if variant != "nested-no-cty":
        header["cty"] = "JWT"
    enc = jwe.JWE(token.encode(), protected=json.dumps(header))
    enc.add_recipient(key(desk_pub))
    return enc.serialize(compact=True)


def verify(token, desk_priv, brand_pub, issuer, now):
    outer = jwe.JWE(algs=["RSA-OAEP-256", "A256GCM"])
    outer.deserialize(token, key=key(desk_priv))
    inner = jws.JWS()
    inner.allowed_algs = ["RS256"]
    inner.deserialize(outer.payload.decode())
    inner.verify(key(brand_pub), alg="RS256")
    claims = json.loads(inner.payload)
    if claims.get("iss") != issuer:
        raise ValueError("wrong issuer")
    if not int(now) < claims["exp"]:
        raise ValueError("expired")
    return {"userId": claims["https://iadvize.com/userId"], "exp": claims["exp"]}


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    try:
        if cmd == "mint":
            print(mint(*args))
        elif cmd == "verify":
            print(json.dumps(verify(*args)))
        else:
            raise ValueError(f"unknown command {cmd}")
    except Exception as e:  # report any failure as a non-zero exit
        print(f"jwcrypto: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
