//! Reading keys from bytes: a brand's public keys (PEM SubjectPublicKeyInfo, PEM PKCS#1, bare
//! base64 DER as iAdvize publishes, binary DER, a JWK or a JWKS) and the desk's private
//! decryption keys (PEM PKCS#8 or PKCS#1).
//!
//! Loading is where weak or wrong keys are refused, with a message fit for a settings screen:
//! RSA under 2048 bits (or over 8192, a denial-of-service lever), exponents other than 65537,
//! private material in a trust file, duplicate `kid`s. [`inspect_key`] is the lenient twin that
//! reports the same problems as warnings instead.

use std::collections::BTreeMap;
use std::fmt;

use josekit::jwe::alg::rsaes::{RsaesJweAlgorithm, RsaesJweDecrypter};
use josekit::jws::alg::rsassa::{RsassaJwsAlgorithm, RsassaJwsVerifier};
use josekit::jws::JwsVerifier;
use openssl::bn::BigNum;
use openssl::pkey::{Id, PKey, Private, Public};
use openssl::rsa::Rsa;
use serde_json::{Map, Value};

use crate::b64;
use crate::json::{self, excerpt, JsonError};

pub const MIN_RSA_BITS: u32 = 2048;
/// Larger keys make every verification slow for no security gain: refused as a DoS lever.
pub const MAX_RSA_BITS: u32 = 8192;
const MAX_KID_CHARS: usize = 256;
/// Key files are small; anything bigger is not a key.
const MAX_KEY_BYTES: usize = 1024 * 1024;

/// Why key material was refused. Messages are lowercase and say what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a recognised key: expected a PEM public key, bare base64 DER, a JWK or a JWKS")]
    Unrecognised,
    #[error("no key found")]
    Empty,
    #[error("too large to be a key (over 1 MiB)")]
    TooBig,
    #[error("not a public key: this holds private key material; give Lockdesk only the brand's public key")]
    PrivateMaterial,
    #[error("not a private key: expected the desk's RSA private key in PEM (PKCS#8 or PKCS#1)")]
    NotPrivate,
    #[error("encrypted private keys are not supported: decrypt it first (openssl pkey -in KEY -out KEY.plain)")]
    EncryptedPrivate,
    #[error(
        "a certificate, not a key: extract its public key (openssl x509 -pubkey -noout -in CERT)"
    )]
    Certificate,
    #[error("not an RSA key ({0}): Lockdesk only accepts RSA keys")]
    NotRsa(String),
    #[error("key under {MIN_RSA_BITS} bits ({0} bits)")]
    TooSmall(u32),
    #[error("key over {MAX_RSA_BITS} bits ({0} bits)")]
    TooLarge(u32),
    #[error("public exponent must be 65537, found {0}")]
    BadExponent(String),
    #[error("duplicate kid {0}: every key of an issuer needs its own kid")]
    DuplicateKid(String),
    #[error("invalid JWK: {0}")]
    Jwk(String),
    #[error("invalid key: {0}")]
    Invalid(String),
}

/// How the key was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyForm {
    /// `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo).
    PemSpki,
    /// `-----BEGIN RSA PUBLIC KEY-----` (PKCS#1).
    PemPkcs1,
    /// Bare base64 of DER, the form iAdvize publishes its key in.
    Base64Der,
    /// Binary DER.
    Der,
    Jwk,
    Jwks,
    /// `-----BEGIN PRIVATE KEY-----`.
    PemPkcs8Private,
    /// `-----BEGIN RSA PRIVATE KEY-----`.
    PemPkcs1Private,
}

impl KeyForm {
    pub fn describe(self) -> &'static str {
        match self {
            KeyForm::PemSpki => "PEM public key (SubjectPublicKeyInfo)",
            KeyForm::PemPkcs1 => "PEM RSA public key (PKCS#1)",
            KeyForm::Base64Der => "bare base64 DER public key",
            KeyForm::Der => "binary DER key",
            KeyForm::Jwk => "JWK",
            KeyForm::Jwks => "JWK set",
            KeyForm::PemPkcs8Private => "PEM private key (PKCS#8)",
            KeyForm::PemPkcs1Private => "PEM RSA private key (PKCS#1)",
        }
    }
}

/// One RSA key as read, before any policy.
struct Raw {
    form: KeyForm,
    n: BigNum,
    e: BigNum,
    private: Option<Rsa<Private>>,
    /// True for private material even when we did not build an openssl key (private JWKs).
    has_private: bool,
    kid: Option<String>,
    alg: Option<String>,
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
}

impl Raw {
    fn from_public(form: KeyForm, rsa: &Rsa<Public>) -> Result<Raw, KeyError> {
        Ok(Raw {
            form,
            n: clone_bn(rsa.n())?,
            e: clone_bn(rsa.e())?,
            private: None,
            has_private: false,
            kid: None,
            alg: None,
            key_use: None,
            key_ops: None,
        })
    }

    fn from_private(form: KeyForm, rsa: Rsa<Private>) -> Result<Raw, KeyError> {
        Ok(Raw {
            form,
            n: clone_bn(rsa.n())?,
            e: clone_bn(rsa.e())?,
            private: Some(rsa),
            has_private: true,
            kid: None,
            alg: None,
            key_use: None,
            key_ops: None,
        })
    }

    fn bits(&self) -> u32 {
        self.n.num_bits().max(0) as u32
    }

    fn exponent_ok(&self) -> bool {
        self.e.to_vec() == [1, 0, 1]
    }

    fn exponent_text(&self) -> String {
        self.e
            .to_dec_str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "?".into())
    }

    fn thumbprint(&self) -> String {
        thumbprint(&self.n.to_vec(), &self.e.to_vec())
    }

    /// Size and exponent rules shared by public and private keys.
    fn check_strength(&self) -> Result<(), KeyError> {
        let bits = self.bits();
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooSmall(bits));
        }
        if bits > MAX_RSA_BITS {
            return Err(KeyError::TooLarge(bits));
        }
        if !self.exponent_ok() {
            return Err(KeyError::BadExponent(self.exponent_text()));
        }
        Ok(())
    }
}

fn clone_bn(b: &openssl::bn::BigNumRef) -> Result<BigNum, KeyError> {
    b.to_owned().map_err(|e| KeyError::Invalid(e.to_string()))
}

/// RFC 7638 thumbprint of an RSA key: base64url(SHA-256(`{"e":..,"kty":"RSA","n":..}`)), with
/// `n` and `e` as unsigned big-endian integers without leading zeros.
pub fn thumbprint(n: &[u8], e: &[u8]) -> String {
    let strip = |b: &[u8]| -> Vec<u8> {
        let first = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        b[first..].to_vec()
    };
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        b64::url_encode(&strip(e)),
        b64::url_encode(&strip(n))
    );
    b64::url_encode(&openssl::sha::sha256(canonical.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Reading any supported form.

fn read_keys(bytes: &[u8]) -> Result<Vec<Raw>, KeyError> {
    if bytes.len() > MAX_KEY_BYTES {
        return Err(KeyError::TooBig);
    }
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(KeyError::Empty);
    }
    if trimmed[0] == b'{' {
        return read_json(trimmed);
    }
    if contains(trimmed, b"-----BEGIN ") {
        return read_pem(trimmed);
    }
    if trimmed[0] == 0x30 && !trimmed.is_ascii() {
        return read_der(bytes, KeyForm::Der).map(|k| vec![k]);
    }
    match b64::standard_decode(trimmed) {
        Some(der) => read_der(&der, KeyForm::Base64Der).map(|k| vec![k]),
        None => Err(KeyError::Unrecognised),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// DER of unknown kind: public forms first, then private ones (which are then refused or used
/// depending on the caller).
fn read_der(der: &[u8], form: KeyForm) -> Result<Raw, KeyError> {
    if let Ok(pkey) = PKey::public_key_from_der(der) {
        return raw_from_pkey_public(form, &pkey);
    }
    if let Ok(rsa) = Rsa::public_key_from_der_pkcs1(der) {
        return Raw::from_public(form, &rsa);
    }
    if let Ok(pkey) = PKey::private_key_from_der(der) {
        return raw_from_pkey_private(form, pkey);
    }
    Err(KeyError::Unrecognised)
}

fn raw_from_pkey_public(form: KeyForm, pkey: &PKey<Public>) -> Result<Raw, KeyError> {
    if pkey.id() != Id::RSA {
        return Err(KeyError::NotRsa(key_type_name(pkey.id())));
    }
    let rsa = pkey.rsa().map_err(|e| KeyError::Invalid(e.to_string()))?;
    Raw::from_public(form, &rsa)
}

fn raw_from_pkey_private(form: KeyForm, pkey: PKey<Private>) -> Result<Raw, KeyError> {
    if pkey.id() != Id::RSA {
        return Err(KeyError::NotRsa(key_type_name(pkey.id())));
    }
    let rsa = pkey.rsa().map_err(|e| KeyError::Invalid(e.to_string()))?;
    Raw::from_private(form, rsa)
}

fn key_type_name(id: Id) -> String {
    match id {
        Id::EC => "EC".into(),
        Id::ED25519 => "Ed25519".into(),
        Id::ED448 => "Ed448".into(),
        Id::DSA => "DSA".into(),
        Id::RSA_PSS => "RSA-PSS".into(),
        other => format!("type {}", other.as_raw()),
    }
}

fn read_pem(text: &[u8]) -> Result<Vec<Raw>, KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| KeyError::Unrecognised)?;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after.find("-----").ok_or(KeyError::Unrecognised)?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or_else(|| KeyError::Invalid(format!("PEM block {label} has no END line")))?;
        let body = &body_start[..body_end];
        rest = &body_start[body_end + end_marker.len()..];

        if body.contains("ENCRYPTED") || label == "ENCRYPTED PRIVATE KEY" {
            return Err(KeyError::EncryptedPrivate);
        }
        // Drop RFC 1421 headers ("Name: value" lines), keep base64.
        let b64_text: String = body
            .lines()
            .filter(|l| !l.contains(':'))
            .collect::<Vec<_>>()
            .join("");
        let der = b64::standard_decode(b64_text.as_bytes())
            .ok_or_else(|| KeyError::Invalid(format!("PEM block {label} is not valid base64")))?;
        let invalid = |e: openssl::error::ErrorStack| {
            KeyError::Invalid(format!("PEM block {label} cannot be read: {e}"))
        };
        let raw = match label {
            "PUBLIC KEY" => {
                let pkey = PKey::public_key_from_der(&der).map_err(invalid)?;
                raw_from_pkey_public(KeyForm::PemSpki, &pkey)?
            }
            "RSA PUBLIC KEY" => {
                let rsa = Rsa::public_key_from_der_pkcs1(&der).map_err(invalid)?;
                Raw::from_public(KeyForm::PemPkcs1, &rsa)?
            }
            "PRIVATE KEY" => {
                let pkey = PKey::private_key_from_der(&der).map_err(invalid)?;
                raw_from_pkey_private(KeyForm::PemPkcs8Private, pkey)?
            }
            "RSA PRIVATE KEY" => {
                let rsa = Rsa::private_key_from_der(&der).map_err(invalid)?;
                Raw::from_private(KeyForm::PemPkcs1Private, rsa)?
            }
            "CERTIFICATE" | "TRUSTED CERTIFICATE" | "X509 CERTIFICATE" => {
                return Err(KeyError::Certificate)
            }
            "EC PRIVATE KEY" | "EC PUBLIC KEY" => return Err(KeyError::NotRsa("EC".into())),
            other => {
                return Err(KeyError::Invalid(format!(
                    "unexpected PEM block {}",
                    excerpt(other)
                )))
            }
        };
        out.push(raw);
    }
    if out.is_empty() {
        return Err(KeyError::Unrecognised);
    }
    Ok(out)
}

fn read_json(text: &[u8]) -> Result<Vec<Raw>, KeyError> {
    let map = match json::parse_object(text) {
        Ok(m) => m,
        Err(JsonError::Duplicate(name)) => {
            return Err(KeyError::Jwk(format!("member {name} appears twice")))
        }
        Err(JsonError::Invalid(msg)) => return Err(KeyError::Jwk(msg)),
    };
    if let Some(keys) = map.get("keys") {
        let Value::Array(keys) = keys else {
            return Err(KeyError::Jwk("`keys` must be an array".into()));
        };
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        return keys
            .iter()
            .enumerate()
            .map(|(i, k)| match k {
                Value::Object(m) => read_jwk(m, KeyForm::Jwks)
                    .map_err(|e| KeyError::Jwk(format!("key {i}: {}", strip_prefix(&e)))),
                _ => Err(KeyError::Jwk(format!("key {i} is not an object"))),
            })
            .collect();
    }
    read_jwk(&map, KeyForm::Jwk).map(|k| vec![k])
}

fn strip_prefix(e: &KeyError) -> String {
    match e {
        KeyError::Jwk(m) => m.clone(),
        other => other.to_string(),
    }
}

const PRIVATE_JWK_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

fn read_jwk(m: &Map<String, Value>, form: KeyForm) -> Result<Raw, KeyError> {
    let opt_str = |name: &str| -> Result<Option<String>, KeyError> {
        match m.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(KeyError::Jwk(format!(
                "`{name}` must be a string, found {}",
                json::kind(v)
            ))),
        }
    };
    let kty = opt_str("kty")?.ok_or_else(|| KeyError::Jwk("`kty` is required".into()))?;
    if kty != "RSA" {
        return Err(KeyError::NotRsa(format!("kty {}", excerpt(&kty))));
    }
    let big = |name: &str| -> Result<BigNum, KeyError> {
        let s = opt_str(name)?.ok_or_else(|| KeyError::Jwk(format!("`{name}` is required")))?;
        let bytes = b64::url_decode(s.as_bytes())
            .ok_or_else(|| KeyError::Jwk(format!("`{name}` is not unpadded base64url")))?;
        if bytes.is_empty() {
            return Err(KeyError::Jwk(format!("`{name}` is empty")));
        }
        BigNum::from_slice(&bytes).map_err(|e| KeyError::Jwk(e.to_string()))
    };
    let n = big("n")?;
    let e = big("e")?;
    let kid = opt_str("kid")?;
    if let Some(k) = &kid {
        if k.chars().count() > MAX_KID_CHARS || k.chars().any(char::is_control) {
            return Err(KeyError::Jwk(
                "`kid` must be at most 256 characters without control characters".into(),
            ));
        }
    }
    let key_ops = match m.get("key_ops") {
        None => None,
        Some(Value::Array(ops)) => Some(
            ops.iter()
                .map(|o| match o {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(KeyError::Jwk("`key_ops` must hold strings".into())),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(KeyError::Jwk("`key_ops` must be an array".into())),
    };
    let has_private = PRIVATE_JWK_MEMBERS.iter().any(|p| m.contains_key(*p));
    Ok(Raw {
        form,
        n,
        e,
        private: None,
        has_private,
        kid,
        alg: opt_str("alg")?,
        key_use: opt_str("use")?,
        key_ops,
    })
}

// ---------------------------------------------------------------------------------------------
// Public (trust) keys.

/// A brand's RSA public key, ready to verify RS256 signatures.
#[derive(Clone)]
pub struct PublicKey {
    kid: Option<String>,
    thumbprint: String,
    bits: u32,
    n: Vec<u8>,
    e: Vec<u8>,
    spki_der: Vec<u8>,
    /// Identifies the key in per-thread OpenSSL context caches (clones share it).
    id: u64,
    pkey: PKey<Public>,
    /// josekit's verifier: the reference the fast path is checked against in tests.
    verifier: RsassaJwsVerifier,
}

/// Source of [`PublicKey`]/[`DecryptionKey`] ids.
static NEXT_KEY_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_key_id() -> u64 {
    NEXT_KEY_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("thumbprint", &self.thumbprint)
            .field("bits", &self.bits)
            .finish()
    }
}

impl PublicKey {
    fn from_raw(raw: &Raw) -> Result<PublicKey, KeyError> {
        let n = raw.n.to_vec();
        let e = raw.e.to_vec();
        let rsa = Rsa::from_public_components(clone_bn(&raw.n)?, clone_bn(&raw.e)?)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let pkey = PKey::from_rsa(rsa).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let spki_der = pkey
            .public_key_to_der()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let verifier = RsassaJwsAlgorithm::Rs256
            .verifier_from_der(&spki_der)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        // Re-read from DER so OpenSSL holds a provider-native key (no legacy export per use).
        let pkey =
            PKey::public_key_from_der(&spki_der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(PublicKey {
            kid: raw.kid.clone(),
            thumbprint: raw.thumbprint(),
            bits: raw.bits(),
            n,
            e,
            spki_der,
            id: next_key_id(),
            pkey,
            verifier,
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// RFC 7638 thumbprint (base64url SHA-256).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
    pub fn bits(&self) -> u32 {
        self.bits
    }
    /// Signature and encrypted-key length in bytes.
    pub fn modulus_len(&self) -> usize {
        self.n.len()
    }
    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }
    /// The public JWK (`kty`, `n`, `e`, and `kid` when known).
    pub fn to_jwk(&self) -> Value {
        let mut m = Map::new();
        m.insert("kty".into(), "RSA".into());
        m.insert("n".into(), b64::url_encode(&self.n).into());
        m.insert("e".into(), b64::url_encode(&self.e).into());
        if let Some(k) = &self.kid {
            m.insert("kid".into(), k.clone().into());
        }
        Value::Object(m)
    }
    /// RS256 check of `signature` over `message` through josekit (the reference path).
    pub(crate) fn verify_rs256_josekit(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifier.verify(message, signature).is_ok()
    }
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
    pub(crate) fn pkey(&self) -> &PKey<Public> {
        &self.pkey
    }
    /// Gives the key a `kid` (e.g. from a configuration that names it).
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
}

/// Reads a brand's public key(s) from any supported form, refusing weak keys, private material,
/// non-RS256 JWKs and duplicate `kid`s.
pub fn parse_public_keys(bytes: &[u8]) -> Result<Vec<PublicKey>, KeyError> {
    let raws = read_keys(bytes)?;
    let mut out: Vec<PublicKey> = Vec::with_capacity(raws.len());
    for raw in &raws {
        if raw.has_private {
            return Err(KeyError::PrivateMaterial);
        }
        raw.check_strength()?;
        if let Some(alg) = &raw.alg {
            if alg != "RS256" {
                return Err(KeyError::Jwk(format!(
                    "`alg` is {}: a brand's signing key must be for RS256",
                    excerpt(alg)
                )));
            }
        }
        if let Some(u) = &raw.key_use {
            if u != "sig" {
                return Err(KeyError::Jwk(format!(
                    "`use` is {}: a brand's signing key must have use \"sig\"",
                    excerpt(u)
                )));
            }
        }
        if let Some(ops) = &raw.key_ops {
            if !ops.iter().any(|o| o == "verify") {
                return Err(KeyError::Jwk("`key_ops` does not allow \"verify\"".into()));
            }
        }
        let key = PublicKey::from_raw(raw)?;
        if let Some(kid) = key.kid() {
            if out.iter().any(|k| k.kid() == Some(kid)) {
                return Err(KeyError::DuplicateKid(excerpt(kid)));
            }
        }
        out.push(key);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Private (decryption) keys.

/// One of the desk's private keys, ready to open RSA-OAEP-256 encrypted keys.
#[derive(Clone)]
pub struct DecryptionKey {
    thumbprint: String,
    bits: u32,
    modulus_len: usize,
    /// Identifies the key in per-thread OpenSSL context caches (clones share it).
    id: u64,
    pkey: PKey<Private>,
    /// josekit's decrypter: the reference the fast path is checked against in tests.
    decrypter: RsaesJweDecrypter,
    public: PublicKey,
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptionKey")
            .field("thumbprint", &self.thumbprint)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl DecryptionKey {
    /// RFC 7638 thumbprint of the key (of its public half).
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }
    pub fn bits(&self) -> u32 {
        self.bits
    }
    pub fn modulus_len(&self) -> usize {
        self.modulus_len
    }
    /// The public half, e.g. to hand to brands or to mint test tokens.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }
    pub(crate) fn decrypter(&self) -> &RsaesJweDecrypter {
        &self.decrypter
    }
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
    pub(crate) fn pkey(&self) -> &PKey<Private> {
        &self.pkey
    }
}

/// Reads the desk's private key(s) from PEM (PKCS#8 or PKCS#1; several blocks allowed).
pub fn parse_decryption_keys(bytes: &[u8]) -> Result<Vec<DecryptionKey>, KeyError> {
    let raws = read_keys(bytes)?;
    let mut out = Vec::with_capacity(raws.len());
    for raw in raws {
        let Some(rsa) = &raw.private else {
            return Err(KeyError::NotPrivate);
        };
        raw.check_strength()?;
        if !rsa.check_key().unwrap_or(false) {
            return Err(KeyError::Invalid(
                "the RSA private key is inconsistent (check_key failed)".into(),
            ));
        }
        let pkey = PKey::from_rsa(rsa.clone()).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let pkcs8 = pkey
            .private_key_to_pkcs8()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let decrypter = RsaesJweAlgorithm::RsaOaep256
            .decrypter_from_der(&pkcs8)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let public = PublicKey::from_raw(&raw)?;
        let native =
            PKey::private_key_from_der(&pkcs8).map_err(|e| KeyError::Invalid(e.to_string()))?;
        out.push(DecryptionKey {
            thumbprint: raw.thumbprint(),
            bits: raw.bits(),
            modulus_len: public.modulus_len(),
            id: next_key_id(),
            pkey: native,
            decrypter,
            public,
        });
    }
    Ok(out)
}

/// Reads an RSA private key from PEM for signing (minting); same rules as decryption keys.
pub(crate) fn parse_private_rsa(bytes: &[u8]) -> Result<(Rsa<Private>, String), KeyError> {
    let mut raws = read_keys(bytes)?;
    if raws.len() != 1 {
        return Err(KeyError::Invalid(format!(
            "expected one private key, found {}",
            raws.len()
        )));
    }
    let raw = raws.remove(0);
    raw.check_strength()?;
    let tp = raw.thumbprint();
    match raw.private {
        Some(rsa) => Ok((rsa, tp)),
        None => Err(KeyError::NotPrivate),
    }
}

// ---------------------------------------------------------------------------------------------
// Trust store.

/// The trusted issuers and their public keys.
#[derive(Clone, Debug, Default)]
pub struct TrustStore {
    issuers: BTreeMap<String, Vec<PublicKey>>,
}

impl TrustStore {
    pub fn new() -> Self {
        TrustStore::default()
    }

    /// Adds keys for `issuer` (appending to any it already has); refuses an empty set and a `kid`
    /// used twice for one issuer. A key already present (same thumbprint) is not added twice.
    pub fn add(&mut self, issuer: impl Into<String>, keys: Vec<PublicKey>) -> Result<(), KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let entry = self.issuers.entry(issuer.into()).or_default();
        for key in keys {
            if entry.iter().any(|k| k.thumbprint() == key.thumbprint()) {
                continue;
            }
            if let Some(kid) = key.kid() {
                if entry.iter().any(|k| k.kid() == Some(kid)) {
                    return Err(KeyError::DuplicateKid(excerpt(kid)));
                }
            }
            entry.push(key);
        }
        Ok(())
    }

    /// Replaces `issuer`'s keys (used when a remote key set is refetched).
    pub fn replace(
        &mut self,
        issuer: impl Into<String>,
        keys: Vec<PublicKey>,
    ) -> Result<(), KeyError> {
        let issuer = issuer.into();
        self.issuers.remove(&issuer);
        self.add(issuer, keys)
    }

    pub fn keys(&self, issuer: &str) -> Option<&[PublicKey]> {
        self.issuers.get(issuer).map(Vec::as_slice)
    }

    pub fn issuers(&self) -> impl Iterator<Item = &str> {
        self.issuers.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }
}

// ---------------------------------------------------------------------------------------------
// Inspection.

/// What `keys inspect` shows about one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    pub form: KeyForm,
    pub private: bool,
    pub bits: u32,
    /// Decimal.
    pub exponent: String,
    /// RFC 7638 thumbprint of the public half.
    pub thumbprint: String,
    pub kid: Option<String>,
    pub alg: Option<String>,
    /// Problems Lockdesk would refuse the key for, or that deserve attention.
    pub warnings: Vec<String>,
}

/// Reads keys leniently and reports what they are and what is wrong with them.
pub fn inspect_key(bytes: &[u8]) -> Result<Vec<KeyInfo>, KeyError> {
    let raws = read_keys(bytes)?;
    let mut seen_kids: Vec<String> = Vec::new();
    Ok(raws
        .iter()
        .map(|raw| {
            let mut warnings = Vec::new();
            if let Err(e) = raw.check_strength() {
                warnings.push(format!("Lockdesk refuses this key: {e}"));
            }
            if let Some(alg) = &raw.alg {
                if alg != "RS256" && alg != "RSA-OAEP-256" {
                    warnings.push(format!(
                        "alg {} is neither RS256 (brand signing) nor RSA-OAEP-256 (desk decryption)",
                        excerpt(alg)
                    ));
                }
            }
            if let Some(kid) = &raw.kid {
                if seen_kids.contains(kid) {
                    warnings.push(format!("duplicate kid {}", excerpt(kid)));
                }
                seen_kids.push(kid.clone());
            }
            if let Some(rsa) = &raw.private {
                if !rsa.check_key().unwrap_or(false) {
                    warnings.push("the private key is inconsistent (check_key failed)".into());
                }
            }
            KeyInfo {
                form: raw.form,
                private: raw.has_private,
                bits: raw.bits(),
                exponent: raw.exponent_text(),
                thumbprint: raw.thumbprint(),
                kid: raw.kid.clone(),
                alg: raw.alg.clone(),
                warnings,
            }
        })
        .collect())
}
