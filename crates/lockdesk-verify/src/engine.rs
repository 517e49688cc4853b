//! The verification pipeline. Cheap checks run first, in this order, so garbage never reaches
//! RSA: size → characters and shape → header JSON and policy → segment lengths → RSA-OAEP →
//! AES-GCM → inner header → issuer and key choice → signature length → RS256 → claims.

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use zeroize::Zeroizing;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::b64;
use crate::cache::Cache;
use crate::json::{self, excerpt, JsonError, Text};
use crate::keys::{DecryptionKey, PublicKey, TrustStore};
use crate::primitives;
use crate::verdict::{Format, Reason, Rejection, Verdict, Verified};
use crate::{claims, Policy};

const JWE_ALG: &str = "RSA-OAEP-256";
const JWE_ENC: &str = "A256GCM";
const JWS_ALG: &str = "RS256";
/// Header members that must never appear: keys or key references supplied by the token
/// (RFC 8725 §3.10 / CVE-2018-0114 style), compression (size oracles and bombs), and extensions
/// we would have to understand (`crit`, `b64`).
const FORBIDDEN: [&str; 7] = ["jku", "jwk", "x5u", "x5c", "zip", "crit", "b64"];
const JWE_ALLOWED: [&str; 5] = ["alg", "enc", "cty", "kid", "typ"];
const JWS_ALLOWED: [&str; 3] = ["alg", "kid", "typ"];
const MAX_KID_CHARS: usize = 256;
/// Bound on a decoded header: the largest one the format allows (five short members, a kid of
/// 256 characters each written as a 12-byte escape) fits with room to spare.
const MAX_HEADER_BYTES: usize = 4096;

/// Verifies tokens against fixed keys and policy. Cheap to share between threads (`&self`);
/// build a new one when keys or policy change (that also empties the cache).
pub struct Verifier {
    trust: TrustStore,
    decryption: Vec<DecryptionKey>,
    policy: Policy,
    cache: Option<Cache>,
}

impl Verifier {
    /// A verifier with a verdict cache (byte-identical tokens answered without RSA while valid).
    pub fn new(trust: TrustStore, decryption: Vec<DecryptionKey>, policy: Policy) -> Self {
        Verifier {
            trust,
            decryption,
            policy,
            cache: Some(Cache::new()),
        }
    }

    /// Turns the cache off (benchmarks of the full path, tests of the full path).
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    pub fn decryption_keys(&self) -> &[DecryptionKey] {
        &self.decryption
    }

    /// The one entry point: `token` as received (no surrounding whitespace), `now` in Unix
    /// seconds. Never panics.
    pub fn verify(&self, token: &[u8], now: i64) -> Verdict {
        // Size first, before hashing for the cache or anything else.
        if token.len() > self.policy.max_token_bytes {
            return Verdict::Rejected(Rejection::new(
                Reason::TooLarge,
                format!(
                    "the token is {} bytes; at most {} accepted",
                    token.len(),
                    self.policy.max_token_bytes
                ),
            ));
        }
        if let Some(cache) = &self.cache {
            if let Some(v) = cache.get(token, now, &self.policy) {
                return Verdict::Verified(v);
            }
        }
        let outcome = catch_unwind(AssertUnwindSafe(|| self.verify_uncached(token, now)));
        match outcome {
            Ok(Ok(verified)) => {
                if let Some(cache) = &self.cache {
                    cache.insert(token, &verified, now);
                }
                Verdict::Verified(verified)
            }
            Ok(Err(rejection)) => Verdict::Rejected(rejection),
            Err(_) => Verdict::Rejected(Rejection::new(
                Reason::Malformed,
                "internal error while checking the token (a bug: please report it)",
            )),
        }
    }

    fn verify_uncached(&self, token: &[u8], now: i64) -> Result<Verified, Rejection> {
        let segments = split_compact(token)?;
        let parts = segments.as_slice();
        match parts.len() {
            5 => self.verify_jwe(parts, now),
            3 => {
                if self.policy.require_encryption {
                    return Err(Rejection::new(
                        Reason::EncryptionRequired,
                        "the token is a bare JWS; the policy requires an encrypted (JWE) token",
                    ));
                }
                self.verify_jws(token, parts, None, now)
            }
            n => Err(malformed(format!(
                "expected 5 dot-separated parts (JWE) or 3 (JWS), found {n}"
            ))),
        }
    }

    fn verify_jwe(&self, parts: &[&[u8]], now: i64) -> Result<Verified, Rejection> {
        let [h, ek, iv, ct, tag] = parts else {
            return Err(malformed("expected 5 parts".into()));
        };
        // One buffer for every decoded segment of this layer, so decoding allocates once.
        let mut room = vec![
            0;
            [h, ek, iv, ct, tag]
                .map(|s| b64::url_decoded_room(s.len()))
                .iter()
                .sum()
        ];
        let mut scratch = Scratch::new(&mut room);
        let header = decode_header(&mut scratch, h, Layer::Jwe)?;
        require(&header, Field::Alg, "JWE", JWE_ALG)?;
        require(&header, Field::Enc, "JWE", JWE_ENC)?;
        if let Some(cty) = header.get(Field::Cty, "JWE")? {
            if !cty.eq_ignore_ascii_case("JWT") {
                return Err(forbidden(format!(
                    "JWE cty {} is not accepted: expected JWT (a signed token inside)",
                    excerpt(cty)
                )));
            }
        }
        check_typ(&header, "JWE", &["JWT", "JOSE"])?;
        let kid = header_kid(&header, "JWE")?;

        let ek = decode_segment(&mut scratch, ek, "encrypted key")?;
        let iv = decode_segment(&mut scratch, iv, "IV")?;
        let ct = decode_segment(&mut scratch, ct, "ciphertext")?;
        let tag = decode_segment(&mut scratch, tag, "authentication tag")?;
        if iv.len() != primitives::IV_LEN {
            return Err(malformed(format!(
                "the IV is {} bytes; A256GCM needs exactly 12 (96 bits)",
                iv.len()
            )));
        }
        if tag.len() != primitives::TAG_LEN {
            return Err(malformed(format!(
                "the authentication tag is {} bytes; exactly 16 (128 bits) required",
                tag.len()
            )));
        }
        if self.decryption.is_empty() {
            return Err(Rejection::new(
                Reason::DecryptionFailed,
                "the token is encrypted but no decryption key is configured",
            ));
        }
        let mut candidates: Vec<&DecryptionKey> = self
            .decryption
            .iter()
            .filter(|k| k.modulus_len() == ek.len())
            .collect();
        if candidates.is_empty() {
            let sizes: Vec<String> = self
                .decryption
                .iter()
                .map(|k| k.modulus_len().to_string())
                .collect();
            return Err(Rejection::new(
                Reason::DecryptionFailed,
                format!(
                    "the encrypted key is {} bytes; the desk's keys expect {} bytes",
                    ek.len(),
                    sizes.join(" or ")
                ),
            ));
        }
        // A kid equal to a key's thumbprint is tried first; it is only a hint.
        if let Some(kid) = kid {
            candidates.sort_by_key(|k| k.thumbprint() != kid);
        }
        // The header as it appears in the token is the AAD (RFC 7516 §5.2 step 14).
        let aad = *h;
        let mut opened = None;
        // The content key is a secret: its room is wiped when it goes out of scope, whichever
        // way this function returns (the decrypted claims are not secret: they are shown).
        let mut cek_room = Zeroizing::new([0u8; primitives::MAX_MODULUS_LEN]);
        for key in candidates {
            let Some(cek) = primitives::rsa_oaep256_decrypt_into(key, ek, &mut cek_room) else {
                continue;
            };
            if let Some(pt) = primitives::a256gcm_open(cek, iv, aad, ct, tag) {
                opened = Some((pt, key));
                break;
            }
        }
        // One sentence for every failure, so OAEP and GCM failures are indistinguishable.
        let Some((plaintext, key)) = opened else {
            return Err(Rejection::new(
                Reason::DecryptionFailed,
                "the token could not be decrypted with the desk's key(s): wrong key or tampered token",
            ));
        };
        // No trimming: the plaintext must be exactly a compact JWS.
        let inner = plaintext.as_slice();
        if inner.first() == Some(&b'{') {
            return Err(malformed(
                "the encrypted payload is a bare claims set, not a signed JWT: encryption alone proves nothing about the issuer"
                    .into(),
            ));
        }
        let inner_segments = split_compact(inner)
            .map_err(|r| Rejection::new(r.reason, format!("inside the JWE: {}", r.detail)))?;
        let inner_parts = inner_segments.as_slice();
        match inner_parts.len() {
            3 => self.verify_jws(inner, inner_parts, Some(key.thumbprint()), now),
            5 => Err(malformed(
                "the encrypted payload is itself a JWE: expected a signed JWT inside".into(),
            )),
            n => Err(malformed(format!(
                "inside the JWE: expected a JWS of 3 dot-separated parts, found {n}"
            ))),
        }
    }

    fn verify_jws(
        &self,
        token: &[u8],
        parts: &[&[u8]],
        decryption_key: Option<&str>,
        now: i64,
    ) -> Result<Verified, Rejection> {
        let [h, p, s] = parts else {
            return Err(malformed("expected 3 parts".into()));
        };
        let mut room = vec![
            0;
            [h, p, s]
                .map(|s| b64::url_decoded_room(s.len()))
                .iter()
                .sum()
        ];
        let mut scratch = Scratch::new(&mut room);
        let header = decode_header(&mut scratch, h, Layer::Jws)?;
        require(&header, Field::Alg, "JWS", JWS_ALG)?;
        check_typ(&header, "JWS", &["JWT"])?;
        let kid = header_kid(&header, "JWS")?;

        let payload = decode_segment(&mut scratch, p, "payload")?;
        let claims = match claims::read(payload) {
            Ok(c) => c,
            Err(JsonError::Duplicate(name)) => {
                return Err(Rejection::new(
                    Reason::DuplicateMember,
                    format!("the claims contain member {name} twice"),
                ))
            }
            Err(JsonError::Invalid(msg)) => {
                return Err(malformed(format!(
                    "the claims are not a JSON object: {msg}"
                )))
            }
        };
        let signature = decode_segment(&mut scratch, s, "signature")?;

        // The issuer picks the keys. It is read before the signature is checked, but only to
        // choose keys: nothing else from the payload is used until the signature verifies.
        let issuer = match &claims.iss {
            Some(c) => match c.as_str() {
                Some(s) => s.to_owned(),
                None => {
                    return Err(Rejection::new(
                        Reason::InvalidClaims,
                        format!("iss must be a string, found {}", c.kind()),
                    ))
                }
            },
            None => {
                return Err(Rejection::new(
                    Reason::InvalidClaims,
                    "iss is required (it names the brand whose key signs the token)",
                ))
            }
        };
        let Some(keys) = self.trust.keys(&issuer) else {
            return Err(Rejection::new(
                Reason::UntrustedIssuer,
                format!("issuer {} is not trusted", excerpt(&issuer)),
            ));
        };
        let candidates = choose_keys(keys, kid, &issuer)?;
        let signing_input = &token[..h.len() + 1 + p.len()];
        let mut signer = None;
        let mut wrong_length = true;
        for key in candidates {
            if signature.len() == key.modulus_len() {
                wrong_length = false;
            }
            if primitives::rs256_verify(key, signing_input, signature) {
                signer = Some(key);
                break;
            }
        }
        let Some(signer) = signer else {
            return Err(Rejection::new(
                Reason::BadSignature,
                if wrong_length {
                    format!(
                        "the signature is {} bytes, which fits none of the issuer's keys",
                        signature.len()
                    )
                } else {
                    format!(
                        "the signature does not verify with the key(s) of issuer {}",
                        excerpt(&issuer)
                    )
                },
            ));
        };

        let checked = claims::check(&claims, now, &self.policy)?;
        let mut warnings = checked.warnings;
        if decryption_key.is_none() {
            warnings.insert(
                0,
                "the token is signed but not encrypted: its claims travelled readable".into(),
            );
        }
        Ok(Verified {
            format: if decryption_key.is_some() {
                Format::Jwe
            } else {
                Format::Jws
            },
            user_id: checked.user_id,
            visitor_data: checked.visitor_data,
            issuer,
            expires_at: checked.expires_at,
            issued_at: checked.issued_at,
            not_before: checked.not_before,
            signing_key: signer.thumbprint().to_owned(),
            decryption_key: decryption_key.map(str::to_owned),
            warnings,
        })
    }
}

/// The keys to try for `kid`. A `kid` is only compared with the configured kids and
/// thumbprints: never used as a path, URL or query.
fn choose_keys<'a>(
    keys: &'a [PublicKey],
    kid: Option<&str>,
    issuer: &str,
) -> Result<Vec<&'a PublicKey>, Rejection> {
    let Some(kid) = kid else {
        return Ok(keys.iter().collect());
    };
    let matching: Vec<&PublicKey> = keys
        .iter()
        .filter(|k| k.kid() == Some(kid) || k.thumbprint() == kid)
        .collect();
    if !matching.is_empty() {
        return Ok(matching);
    }
    // Keys configured without kids (a PEM file): the token's kid names nothing we can check,
    // so all keys are tried.
    if keys.iter().all(|k| k.kid().is_none()) {
        return Ok(keys.iter().collect());
    }
    Err(Rejection::new(
        Reason::UnknownKey,
        format!(
            "issuer {} has no key with kid {}",
            excerpt(issuer),
            excerpt(kid)
        ),
    ))
}

fn malformed(detail: String) -> Rejection {
    Rejection::new(Reason::Malformed, detail)
}

fn unsupported(detail: String) -> Rejection {
    Rejection::new(Reason::UnsupportedAlgorithm, detail)
}

fn forbidden(detail: String) -> Rejection {
    Rejection::new(Reason::ForbiddenHeader, detail)
}

/// A byte of a compact serialization: base64url or a dot.
const fn is_compact(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.')
}

/// Where the first byte that is not base64url or a dot is. This runs on every byte of every
/// token, junk included: 32 bytes at a time without a branch inside (the compiler vectorises
/// it), and the position only looked for in the chunk that has one.
fn first_non_compact(token: &[u8]) -> Option<usize> {
    const CHUNK: usize = 32;
    let bad = |chunk: &[u8]| chunk.iter().fold(false, |bad, &b| bad | !is_compact(b));
    let mut chunks = token.chunks_exact(CHUNK);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        if bad(chunk) {
            break;
        }
        at += CHUNK;
    }
    token[at..]
        .iter()
        .position(|&b| !is_compact(b))
        .map(|p| at + p)
}

/// The dot-separated segments of a compact serialization: at most 5, without allocating.
struct Segments<'a> {
    parts: [&'a [u8]; 5],
    len: usize,
}

impl<'a> Segments<'a> {
    fn as_slice(&self) -> &[&'a [u8]] {
        &self.parts[..self.len]
    }
}

/// Splits a compact serialization after checking its characters.
fn split_compact(token: &[u8]) -> Result<Segments<'_>, Rejection> {
    match token.first() {
        None => return Err(malformed("the token is empty".into())),
        Some(b'{') => {
            return Err(malformed(
                "JSON serialization is not accepted: expected the compact form (dot-separated base64url)"
                    .into(),
            ))
        }
        _ => {}
    }
    if let Some(at) = first_non_compact(token) {
        return Err(malformed(format!(
            "unexpected character at byte {at}: expected base64url characters and dots"
        )));
    }
    let mut parts: [&[u8]; 5] = [&[]; 5];
    let mut len = 0;
    let mut rest = token;
    while let Some(dot) = memchr::memchr(b'.', rest) {
        if len == parts.len() - 1 {
            let found = 1 + memchr::memchr_iter(b'.', token).count();
            return Err(malformed(format!(
                "expected 5 dot-separated parts (JWE) or 3 (JWS), found {found}"
            )));
        }
        parts[len] = &rest[..dot];
        len += 1;
        rest = &rest[dot + 1..];
    }
    parts[len] = rest;
    Ok(Segments {
        parts,
        len: len + 1,
    })
}

/// Decodes segments one after the other into one buffer sized once for the layer
/// ([`b64::url_decoded_room`] of each segment).
struct Scratch<'b> {
    rest: &'b mut [u8],
}

impl<'b> Scratch<'b> {
    fn new(room: &'b mut [u8]) -> Self {
        Scratch { rest: room }
    }

    /// The decoded bytes of `seg`, or `None` when it is not canonical unpadded base64url.
    fn decode(&mut self, seg: &[u8]) -> Option<&'b [u8]> {
        let room = std::mem::take(&mut self.rest);
        match b64::url_decode_into(seg, room) {
            Some(n) => {
                let (out, rest) = room.split_at_mut(n);
                self.rest = rest;
                Some(out)
            }
            None => {
                self.rest = room;
                None
            }
        }
    }
}

fn decode_segment<'b>(
    scratch: &mut Scratch<'b>,
    seg: &[u8],
    what: &str,
) -> Result<&'b [u8], Rejection> {
    scratch
        .decode(seg)
        .ok_or_else(|| malformed(format!("the {what} is not unpadded base64url")))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    Jwe,
    Jws,
}

impl Layer {
    fn name(self) -> &'static str {
        match self {
            Layer::Jwe => "JWE",
            Layer::Jws => "JWS",
        }
    }

    fn allowed(self) -> &'static [&'static str] {
        match self {
            Layer::Jwe => &JWE_ALLOWED,
            Layer::Jws => &JWS_ALLOWED,
        }
    }
}

/// The header members the verifier reads.
#[derive(Clone, Copy)]
enum Field {
    Alg,
    Enc,
    Cty,
    Kid,
    Typ,
}

impl Field {
    #[cfg(test)]
    const ALL: [Field; 5] = [Field::Alg, Field::Enc, Field::Cty, Field::Kid, Field::Typ];

    fn name(self) -> &'static str {
        match self {
            Field::Alg => "alg",
            Field::Enc => "enc",
            Field::Cty => "cty",
            Field::Kid => "kid",
            Field::Typ => "typ",
        }
    }
}

/// A header member's value: a string (borrowed from the decoded header unless it holds an
/// escape), or the JSON type of anything else, to name it in the rejection.
enum Member<'a> {
    Str(Cow<'a, str>),
    Other(&'static str),
}

/// A JWE or JWS header: its members, every one allowed for the layer, none twice (at any
/// depth), nothing after the object.
#[derive(Default)]
struct Header<'a> {
    members: [Option<Member<'a>>; 5],
}

impl<'a> Header<'a> {
    fn slot(&mut self, name: &str) -> Option<&mut Option<Member<'a>>> {
        let field = match name {
            "alg" => Field::Alg,
            "enc" => Field::Enc,
            "cty" => Field::Cty,
            "kid" => Field::Kid,
            "typ" => Field::Typ,
            _ => return None,
        };
        Some(&mut self.members[field as usize])
    }

    fn has(&self, field: Field) -> bool {
        self.members[field as usize].is_some()
    }

    /// A member that must be a string when present.
    fn get(&self, field: Field, layer: &str) -> Result<Option<&str>, Rejection> {
        match &self.members[field as usize] {
            None => Ok(None),
            Some(Member::Str(s)) => Ok(Some(s)),
            Some(Member::Other(kind)) => Err(malformed(format!(
                "the {layer} header's {} must be a string, found {kind}",
                field.name()
            ))),
        }
    }
}

/// The common header, read straight into [`Header`]: an object whose members are all among
/// the five the verifier reads, each once, each a string. Anything else is refused here and
/// left to [`header_in_full`], which finds the precise rejection.
struct Typed<'de>(Header<'de>);

impl<'de> Deserialize<'de> for Typed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = Typed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JOSE header")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Typed<'de>, A::Error> {
                let mut header = Header::default();
                while let Some(Text(name)) = map.next_key()? {
                    let Some(slot) = header.slot(&name) else {
                        return Err(de::Error::custom("a member the verifier does not read"));
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom("a member twice"));
                    }
                    let Text(value) = map.next_value()?;
                    *slot = Some(Member::Str(value));
                }
                Ok(Typed(header))
            }
        }
        d.deserialize_map(HeaderVisitor)
    }
}

/// The typed reading; `None` for anything it does not take (the whole reading decides).
fn typed_header(bytes: &[u8], layer: Layer) -> Option<Header<'_>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let Typed(header) = Typed::deserialize(&mut de).ok()?;
    de.end().ok()?;
    // The JWS layer reads three of the five.
    if layer == Layer::Jws && (header.has(Field::Enc) || header.has(Field::Cty)) {
        return None;
    }
    Some(header)
}

fn decode_header<'b>(
    scratch: &mut Scratch<'b>,
    seg: &[u8],
    layer: Layer,
) -> Result<Header<'b>, Rejection> {
    let name = layer.name();
    // The decoded length of `seg` characters (a lone last character decodes to nothing).
    let decoded = seg.len() / 4 * 3 + (seg.len() % 4).saturating_sub(1);
    if decoded > MAX_HEADER_BYTES {
        return Err(malformed(format!(
            "the {name} header is {} characters of base64url; at most {MAX_HEADER_BYTES} bytes accepted",
            seg.len()
        )));
    }
    // Not `decode_segment`: its description would be formatted for every token, not only for
    // the ones rejected here.
    let bytes = scratch
        .decode(seg)
        .ok_or_else(|| malformed(format!("the {name} header is not unpadded base64url")))?;
    match typed_header(bytes, layer) {
        Some(header) => Ok(header),
        None => header_in_full(bytes, layer),
    }
}

/// Any header [`typed_header`] did not take, read as a whole JSON value and checked in the
/// order the rejections are ranked: JSON and duplicates, then forbidden members, then members
/// the format does not use. A header that passes (a valid one the typed reading missed) is
/// returned too, its values owned.
fn header_in_full(bytes: &[u8], layer: Layer) -> Result<Header<'static>, Rejection> {
    let name = layer.name();
    let map = match json::parse_object(bytes) {
        Ok(m) => m,
        Err(JsonError::Duplicate(member)) => {
            return Err(Rejection::new(
                Reason::DuplicateMember,
                format!("the {name} header contains member {member} twice"),
            ))
        }
        Err(JsonError::Invalid(msg)) => {
            return Err(malformed(format!(
                "the {name} header is not a JSON object: {msg}"
            )))
        }
    };
    check_members(&map, layer.allowed(), name)?;
    let mut header = Header::default();
    for (member, value) in map {
        if let Some(slot) = header.slot(&member) {
            *slot = Some(match value {
                Value::String(s) => Member::Str(Cow::Owned(s)),
                other => Member::Other(json::kind(&other)),
            });
        }
    }
    Ok(header)
}

fn check_members(
    header: &Map<String, Value>,
    allowed: &[&str],
    layer: &str,
) -> Result<(), Rejection> {
    for name in header.keys() {
        if FORBIDDEN.contains(&name.as_str()) {
            return Err(forbidden(format!(
                "the {layer} header carries {name}, which is never accepted"
            )));
        }
    }
    for name in header.keys() {
        if !allowed.contains(&name.as_str()) {
            return Err(forbidden(format!(
                "the {layer} header carries {}, which the format does not use (allowed: {})",
                excerpt(name),
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// The `layer` header's `field` must be `expected`: another value is unsupported, none at all is
/// malformed.
fn require(
    header: &Header<'_>,
    field: Field,
    layer: &str,
    expected: &str,
) -> Result<(), Rejection> {
    match header.get(field, layer)? {
        Some(value) if value == expected => Ok(()),
        Some(other) => Err(unsupported(format!(
            "{layer} {} {} is not accepted: expected {expected}",
            field.name(),
            excerpt(other)
        ))),
        None => Err(malformed(format!(
            "the {layer} header has no {}",
            field.name()
        ))),
    }
}

fn check_typ(header: &Header, layer: &str, accepted: &[&str]) -> Result<(), Rejection> {
    if let Some(typ) = header.get(Field::Typ, layer)? {
        if !accepted.iter().any(|a| typ.eq_ignore_ascii_case(a)) {
            return Err(forbidden(format!(
                "the {layer} typ {} is not accepted: expected {}",
                excerpt(typ),
                accepted.join(" or ")
            )));
        }
    }
    Ok(())
}

fn header_kid<'h>(header: &'h Header, layer: &str) -> Result<Option<&'h str>, Rejection> {
    let kid = header.get(Field::Kid, layer)?;
    if let Some(k) = kid {
        if k.is_empty() || k.chars().count() > MAX_KID_CHARS || k.chars().any(char::is_control) {
            return Err(malformed(format!(
                "the {layer} kid must be 1 to {MAX_KID_CHARS} characters without control characters"
            )));
        }
    }
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first byte outside base64url and dots, wherever it falls against the 32-byte chunks.
    #[test]
    fn the_first_bad_byte_is_found_at_every_position() {
        for len in [1usize, 31, 32, 33, 64, 65, 100] {
            let clean = vec![b'a'; len];
            assert_eq!(first_non_compact(&clean), None, "len {len}");
            for at in 0..len {
                for bad in [b'!', b'=', b'+', b'/', b' ', 0, 0x80, 0xff, b'{'] {
                    let mut t = clean.clone();
                    t[at] = bad;
                    // A second bad byte further on must not be the one reported.
                    if at + 1 < len {
                        t[len - 1] = b'*';
                    }
                    assert_eq!(
                        first_non_compact(&t),
                        Some(at),
                        "len {len} at {at} byte {bad}"
                    );
                }
            }
        }
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || b"-_.".contains(&b);
            assert_eq!(is_compact(b), expected, "byte {b}");
        }
    }

    /// A header read as a whole (the reference) and as the verifier reads it (typed, with the
    /// whole reading only for what the typed one does not take) give the same answer.
    #[test]
    fn the_typed_header_reading_agrees_with_the_whole_reading() {
        fn show(r: Result<Header, Rejection>) -> String {
            match r {
                Err(r) => format!("{:?}: {}", r.reason, r.detail),
                Ok(h) => Field::ALL
                    .iter()
                    .map(|&f| match h.get(f, "X") {
                        Ok(v) => format!("{}={v:?}", f.name()),
                        Err(r) => format!("{}: {}", f.name(), r.detail),
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            }
        }
        let headers: [&[u8]; 30] = [
            br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}"#,
            br#"{"alg":"RS256"}"#,
            br#"{"alg":"RS256","kid":"k1","typ":"JWT"}"#,
            br#" { "alg" : "RS256" } "#,
            br#"{}"#,
            br#"{"alg":"RS\u0032\u0035\u0036","k\u0069d":"\u00e9"}"#,
            br#"{"alg":"RS256","alg":"RS256"}"#,
            br#"{"alg":"RS256","\u0061lg":"none"}"#,
            br#"{"alg":"RS256","kid":{"a":1,"a":2}}"#,
            br#"{"alg":"RS256","x":{"a":1,"a":2}}"#,
            br#"{"alg":"RS256","jku":"https://evil"}"#,
            br#"{"zip":"DEF","foo":1,"alg":"RS256"}"#,
            br#"{"foo":1,"jwk":{}}"#,
            br#"{"alg":"RS256","enc":"A256GCM"}"#,
            br#"{"alg":"RS256","cty":"JWT"}"#,
            br#"{"alg":5}"#,
            br#"{"alg":"RS256","kid":null}"#,
            br#"{"alg":["RS256"],"enc":true,"typ":1.5}"#,
            br#"{"alg":"RS256"} x"#,
            br#"{"alg":"RS256",}"#,
            br#"{"alg":"RS256""#,
            br#"[{"a":1,"a":2}]"#,
            br#"[]"#,
            br#""alg""#,
            br#"1 2"#,
            b"",
            b"{\"alg\":\"\xff\"}",
            br#"{"alg":"\ud800"}"#,
            b"\xef\xbb\xbf{}",
            br#"{"alg":"RS256","kid":"a\u0000b"}"#,
        ];
        for text in headers {
            for layer in [Layer::Jwe, Layer::Jws] {
                let seg = b64::url_encode(text);
                let mut room = vec![0; b64::url_decoded_room(seg.len())];
                let got = decode_header(&mut Scratch::new(&mut room), seg.as_bytes(), layer);
                let reference = header_in_full(text, layer);
                assert_eq!(
                    show(got),
                    show(reference),
                    "{} {}",
                    layer.name(),
                    String::from_utf8_lossy(text)
                );
            }
        }
        // The typed reading takes the common headers itself, borrowing their strings.
        let h = typed_header(br#"{"alg":"RS256","kid":"k1"}"#, Layer::Jws).expect("typed");
        assert!(matches!(
            h.members[Field::Kid as usize],
            Some(Member::Str(Cow::Borrowed("k1")))
        ));
        assert!(typed_header(br#"{"alg":"RS256","cty":"JWT"}"#, Layer::Jws).is_none());
        assert!(typed_header(br#"{"alg":"RS256","cty":"JWT"}"#, Layer::Jwe).is_some());
    }

    #[test]
    fn an_oversized_header_is_refused_before_it_is_decoded() {
        // 5,462 characters decode to 4,096 bytes; 5,463 to 4,097.
        for (len, refused) in [
            (5461, false),
            (5462, false),
            (5463, true),
            (5464, true),
            (9000, true),
        ] {
            let seg = vec![b'A'; len];
            let mut room = vec![0; b64::url_decoded_room(len)];
            let got = decode_header(&mut Scratch::new(&mut room), &seg, Layer::Jwe);
            let detail = got.err().map(|r| r.detail).unwrap_or_default();
            assert_eq!(
                detail.contains("at most 4096 bytes accepted"),
                refused,
                "{len}: {detail}"
            );
        }
    }

    #[test]
    fn segments_are_split_at_every_dot() {
        let parts = |t: &str| -> Result<Vec<String>, Rejection> {
            split_compact(t.as_bytes()).map(|s| {
                s.as_slice()
                    .iter()
                    .map(|p| String::from_utf8(p.to_vec()).unwrap())
                    .collect()
            })
        };
        assert_eq!(parts("a").unwrap(), ["a"]);
        assert_eq!(parts("a.b.c").unwrap(), ["a", "b", "c"]);
        assert_eq!(parts("..").unwrap(), ["", "", ""]);
        assert_eq!(parts("a.bc.d.ef.").unwrap(), ["a", "bc", "d", "ef", ""]);
        for (t, found) in [("a.b.c.d.e.f", 6), ("......", 7), (".....", 6)] {
            let r = parts(t).unwrap_err();
            assert_eq!(r.reason, Reason::Malformed);
            assert_eq!(
                r.detail,
                format!("expected 5 dot-separated parts (JWE) or 3 (JWS), found {found}")
            );
        }
        let r = parts("ab.c\u{202e}d").unwrap_err();
        assert_eq!(
            r.detail,
            "unexpected character at byte 4: expected base64url characters and dots"
        );
        assert_eq!(parts("").unwrap_err().detail, "the token is empty");
    }
}
