// Interop with Node's `jose` (panva/jose): mints tokens in iAdvize's format and verifies
// Lockdesk-minted ones. Keys are PEM files; the token goes to stdout, diagnostics to stderr.
//
//   node jose.mjs mint   BRAND_PRIVATE_PEM DESK_PUBLIC_PEM ISSUER USER_ID NOW [VARIANT]
//   node jose.mjs verify TOKEN DESK_PRIVATE_PEM BRAND_PUBLIC_PEM ISSUER NOW
//
// VARIANT: nested (default), nested-no-cty, nested-kid, jws, a128gcm, rsa-oaep.
import { readFileSync } from 'node:fs';
import * as jose from 'jose';

const [cmd, ...args] = process.argv.slice(2);
const pem = (p) => readFileSync(p, 'utf8');

async function mint(brandPriv, deskPub, issuer, userId, now, variant = 'nested') {
  const t = Number(now);
  const claims = {
    'https://iadvize.com/userId': userId,
    'https://iadvize.com/visitorData': { firstName: 'Grace', email: 'grace@example.com' },
    iss: issuer,
    exp: t + 60,
  };
  const signKey = await jose.importPKCS8(pem(brandPriv), 'RS256');
  const jwsHeader = variant === 'nested-kid' ? { alg: 'RS256', kid: 'brand-1' } : { alg: 'RS256' };
  const jws = await new jose.SignJWT(claims).setProtectedHeader(jwsHeader).sign(signKey);
  if (variant === 'jws') return jws;
  const alg = variant === 'rsa-oaep' ? 'RSA-OAEP' : 'RSA-OAEP-256';
  const enc = variant === 'a128gcm' ? 'A128GCM' : 'A256GCM';
  const encKey = await jose.importSPKI(pem(deskPub), alg);
  const header = { alg, enc };
  if (variant !== 'nested-no-cty') header.cty = 'JWT';
  return new jose.CompactEncrypt(new TextEncoder().encode(jws)).setProtectedHeader(header).encrypt(encKey);
}

async function verify(token, deskPriv, brandPub, issuer, now) {
  const decKey = await jose.importPKCS8(pem(deskPriv), 'RSA-OAEP-256');
  const { plaintext, protectedHeader } = await jose.compactDecrypt(token, decKey, {
    keyManagementAlgorithms: ['RSA-OAEP-256'],
    contentEncryptionAlgorithms: ['A256GCM'],
  });
  const verKey = await jose.importSPKI(pem(brandPub), 'RS256');
  const { payload, protectedHeader: inner } = await jose.jwtVerify(new TextDecoder().decode(plaintext), verKey, {
    algorithms: ['RS256'],
    issuer,
    currentDate: new Date(Number(now) * 1000),
  });
  return { outer: protectedHeader, inner, userId: payload['https://iadvize.com/userId'], exp: payload.exp };
}

try {
  if (cmd === 'mint') {
    process.stdout.write((await mint(...args)) + '\n');
  } else if (cmd === 'verify') {
    process.stdout.write(JSON.stringify(await verify(...args)) + '\n');
  } else {
    throw new Error(`unknown command ${cmd}`);
  }
} catch (e) {
  process.stderr.write(`jose: ${e.code ?? ''} ${e.message}\n`);
  process.exit(1);
}
