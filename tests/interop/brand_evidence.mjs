// A brand backend's evidence step, with Node's `jose` (docs/integration.md, "Posting evidence").
//
// When a signed-in visitor's page activates iAdvize, the backend mints TWO tokens from the same
// claims, both signed with the brand's key:
//   - one encrypted to iAdvize's public key, handed to the iAdvize tag (iAdvize.activate);
//   - one encrypted to the desks' public key, posted to the gateway with iAdvize's visitorId.
// iAdvize cannot pass its token on (it is sealed to iAdvize), so the second one is what a desk
// verifies. This file is a sample to copy, and the test of docs/integration.md runs it as is
// against a real gateway (tests/interop/brand_samples.sh).
//
//   GATEWAY_URL=https://gateway.example.com LOCKDESK_PROVIDER_CREDENTIAL=... \
//   BRAND_PRIVATE_KEY=brand-private.pem DESKS_PUBLIC_KEY=desks-public.pem ISSUER=https://shop.example \
//   node brand_evidence.mjs VISITOR_ID USER_ID [CONVERSATION_ID]
//
// Prints the gateway's answer ({"seq":N}) on stdout; exits 1 with the reason on stderr otherwise.
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import * as jose from 'jose';

// iAdvize's production encryption key as iAdvize publishes it (bare base64 DER, no PEM armour).
export const IADVIZE_PUBLIC_KEY_B64 =
  'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1KdAzuUa5rOXgLHavoDRYoNXzwWz/pFhgGypYFbvV8DNjB93XK2AzKTwW+vxT7RYl4f+sKLdEi3dJYgPt2hquhTNmFxAzRvTuolUOKr1XNx7QbDj+7cfLVDYjmds/ydNtyHi8TUHSvfzs8SGXO5E5H13llmayPEslHKShG0cLIDcLNr6hJcfv9fvOZqQlLQ4Bx7to/66IHke9zY+1oidrUdFGzxXG+RGK81mIMuXj6N2EGJ7YYcQqXJfBJnWFlSGCQNttw5Rfj00eZbkMRO3XohhNqGIiBG2tejSjfB53UpiHdbzni+tyB72R5aaq4d+gkkgaOVYn/Or2fArOH2FUQIDAQAB';

const pemFromBase64 = (b64) =>
  `-----BEGIN PUBLIC KEY-----\n${b64.match(/.{1,64}/g).join('\n')}\n-----END PUBLIC KEY-----\n`;

// iAdvize's format: a JWS (RS256, brand key) inside a JWE (RSA-OAEP-256 + A256GCM) to `recipientPem`.
export async function mintToken({ brandPrivatePem, recipientPem, issuer, userId, visitorData, lifetimeSecs = 60 }) {
  const now = Math.floor(Date.now() / 1000);
  const claims = { 'https://iadvize.com/userId': userId, iss: issuer, exp: now + lifetimeSecs };
  if (visitorData) claims['https://iadvize.com/visitorData'] = visitorData;
  const signKey = await jose.importPKCS8(brandPrivatePem, 'RS256');
  const jws = await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256' }).sign(signKey);
  const encKey = await jose.importSPKI(recipientPem, 'RSA-OAEP-256');
  return new jose.CompactEncrypt(new TextEncoder().encode(jws))
    .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'JWT' })
    .encrypt(encKey);
}

// Both tokens for one activation: `forIAdvize` goes to the page, `forDesks` to the gateway.
export async function tokensForVisitor({ brandPrivatePem, desksPublicPem, issuer, userId, visitorData }) {
  const common = { brandPrivatePem, issuer, userId, visitorData };
  return {
    forIAdvize: await mintToken({ ...common, recipientPem: pemFromBase64(IADVIZE_PUBLIC_KEY_B64) }),
    forDesks: await mintToken({ ...common, recipientPem: desksPublicPem }),
  };
}

// POST /v1/evidence (docs/gateway.md): 202 {"seq": N} once stored durably.
export async function postEvidence({ gatewayUrl, credential, visitorId, conversationId, token, source }) {
  const body = { visitorId, token, presentedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
  if (conversationId) body.conversationId = conversationId;
  if (source) body.source = source;
  const res = await fetch(new URL('/v1/evidence', gatewayUrl), {
    method: 'POST',
    headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  // 503 storage_unavailable is worth a retry; 4xx is a bug or a wrong credential: do not retry.
  if (res.status !== 202) throw new Error(`gateway answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

async function main() {
  const [visitorId, userId, conversationId] = process.argv.slice(2);
  if (!visitorId || !userId) throw new Error('usage: node brand_evidence.mjs VISITOR_ID USER_ID [CONVERSATION_ID]');
  const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
  };
  const { forIAdvize, forDesks } = await tokensForVisitor({
    brandPrivatePem: readFileSync(env('BRAND_PRIVATE_KEY'), 'utf8'),
    desksPublicPem: readFileSync(env('DESKS_PUBLIC_KEY'), 'utf8'),
    issuer: env('ISSUER'),
    userId,
    visitorData: { firstName: 'Ada' },
  });
  // A real backend returns `forIAdvize` to the page (iAdvize.activate); here it is only checked
  // to be a compact JWE, since only iAdvize can open it.
  if (forIAdvize.split('.').length !== 5) throw new Error('the token for iAdvize is not a compact JWE');
  const answer = await postEvidence({
    gatewayUrl: env('GATEWAY_URL'),
    credential: env('LOCKDESK_PROVIDER_CREDENTIAL'),
    visitorId,
    conversationId,
    token: forDesks,
    source: { domain: 'shop.example', device: 'desktop', app: 'web' },
  });
  process.stdout.write(JSON.stringify(answer) + '\n');
}

// Run from the command line (not when imported by a backend).
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main().catch((e) => {
    process.stderr.write(`brand_evidence: ${e.message}\n`);
    process.exit(1);
  });
}
