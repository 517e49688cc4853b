//! Producing tokens in exactly iAdvize's format: an RS256 JWS whose header is `{"alg":"RS256"}`
//! (plus `kid` when asked), inside a JWE `{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}`.
//! For brand engineers testing their set-up, the simulator and tests. The `*_with_header`
//! functions take any header verbatim so tests can build hostile tokens.

use josekit::jwe::alg::rsaes::{RsaesJweAlgorithm, RsaesJweEncrypter};
use josekit::jwe::enc::aesgcm::AesgcmJweEncryption;
use josekit::jwe::{JweContentEncryption, JweEncrypter, JweHeader};
use josekit::jws::alg::rsassa::{RsassaJwsAlgorithm, RsassaJwsSigner};
use josekit::jws::JwsSigner;
use openssl::pkey::PKey;
use serde_json::{Map, Value};

use crate::b64;
use crate::keys::{parse_private_rsa, KeyError, PublicKey};
use crate::{USER_ID_CLAIM, VISITOR_DATA_CLAIM};

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("cryptographic failure: {0}")]
    Crypto(String),
}

fn crypto<E: std::fmt::Display>(e: E) -> MintError {
    MintError::Crypto(e.to_string())
}

/// A brand's private key, for signing.
#[derive(Clone)]
pub struct SigningKey {
    signer: RsassaJwsSigner,
    thumbprint: String,
    kid: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("thumbprint", &self.thumbprint)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// From a PEM (PKCS#8 or PKCS#1) RSA private key of at least 2048 bits, e = 65537.
    pub fn from_pem(bytes: &[u8]) -> Result<SigningKey, MintError> {
        let (rsa, thumbprint) = parse_private_rsa(bytes)?;
        let pkcs8 = PKey::from_rsa(rsa)
            .and_then(|p| p.private_key_to_pkcs8())
            .map_err(crypto)?;
        let signer = RsassaJwsAlgorithm::Rs256
            .signer_from_der(&pkcs8)
            .map_err(crypto)?;
        Ok(SigningKey {
            signer,
            thumbprint,
            kid: None,
        })
    }

    /// Puts `kid` in the JWS header.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Raw RS256 signature over `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, MintError> {
        self.signer.sign(message).map_err(crypto)
    }
}

/// The desk's public key, for encrypting to it.
#[derive(Clone)]
pub struct Recipient {
    encrypter: RsaesJweEncrypter,
    kid: Option<String>,
}

impl Recipient {
    pub fn new(key: &PublicKey) -> Result<Recipient, MintError> {
        let encrypter = RsaesJweAlgorithm::RsaOaep256
            .encrypter_from_der(key.spki_der())
            .map_err(crypto)?;
        Ok(Recipient {
            encrypter,
            kid: None,
        })
    }

    /// Puts `kid` in the JWE header.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// RSA-OAEP-256 encryption of a content key.
    pub fn encrypt_key(&self, cek: &[u8]) -> Result<Vec<u8>, MintError> {
        self.encrypter
            .encrypt(cek, &JweHeader::new(), &mut JweHeader::new())
            .map_err(crypto)?
            .ok_or_else(|| MintError::Crypto("no encrypted key produced".into()))
    }
}

/// What a brand puts in a token.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    pub issuer: String,
    pub user_id: String,
    /// The `visitorData` object, if any.
    pub visitor_data: Option<Map<String, Value>>,
    pub expires_at: i64,
    pub issued_at: Option<i64>,
    pub not_before: Option<i64>,
    /// Anything else, added verbatim.
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The JSON claims set, in iAdvize's member order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(USER_ID_CLAIM.into(), self.user_id.clone().into());
        if let Some(vd) = &self.visitor_data {
            m.insert(VISITOR_DATA_CLAIM.into(), Value::Object(vd.clone()));
        }
        m.insert("iss".into(), self.issuer.clone().into());
        m.insert("exp".into(), self.expires_at.into());
        if let Some(iat) = self.issued_at {
            m.insert("iat".into(), iat.into());
        }
        if let Some(nbf) = self.not_before {
            m.insert("nbf".into(), nbf.into());
        }
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// Signs `claims` as a compact JWS with header `{"alg":"RS256"}` (and `kid` if the key has one).
pub fn sign(claims: &Value, key: &SigningKey) -> Result<String, MintError> {
    let header = match &key.kid {
        None => r#"{"alg":"RS256"}"#.to_owned(),
        Some(kid) => serde_json::json!({"alg": "RS256", "kid": kid}).to_string(),
    };
    sign_with_header(&header, claims.to_string().as_bytes(), key)
}

/// Signs `payload` under `header` taken verbatim (tests build hostile headers with it).
pub fn sign_with_header(
    header: &str,
    payload: &[u8],
    key: &SigningKey,
) -> Result<String, MintError> {
    let mut out = b64::url_encode(header.as_bytes());
    out.push('.');
    out.push_str(&b64::url_encode(payload));
    let sig = key.sign_bytes(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64::url_encode(&sig));
    Ok(out)
}

/// Wraps a JWS in the iAdvize JWE: RSA-OAEP-256 + A256GCM, `cty` JWT.
pub fn encrypt(jws: &str, to: &Recipient) -> Result<String, MintError> {
    let header = match &to.kid {
        None => r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}"#.to_owned(),
        Some(kid) => {
            serde_json::json!({"alg": "RSA-OAEP-256", "enc": "A256GCM", "cty": "JWT", "kid": kid})
                .to_string()
        }
    };
    encrypt_with_header(&header, jws.as_bytes(), to)
}

/// The five segments of a JWE before encoding, for tests that tamper with one of them.
pub struct JweParts {
    pub header: Vec<u8>,
    pub encrypted_key: Vec<u8>,
    pub iv: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub tag: Vec<u8>,
}

impl JweParts {
    pub fn compact(&self) -> String {
        [
            &self.header,
            &self.encrypted_key,
            &self.iv,
            &self.ciphertext,
            &self.tag,
        ]
        .iter()
        .map(|p| b64::url_encode(p))
        .collect::<Vec<_>>()
        .join(".")
    }
}

/// Encrypts `plaintext` under `header` taken verbatim (RSA-OAEP-256 + A256GCM whatever the
/// header says, so tests can lie in it), returning the parts.
pub fn encrypt_parts(
    header: &str,
    plaintext: &[u8],
    to: &Recipient,
) -> Result<JweParts, MintError> {
    // Wiped when dropped, on every path out of here.
    let mut cek = zeroize::Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 12];
    openssl::rand::rand_bytes(&mut *cek).map_err(crypto)?;
    openssl::rand::rand_bytes(&mut iv).map_err(crypto)?;
    let encrypted_key = to.encrypt_key(&*cek)?;
    let aad = b64::url_encode(header.as_bytes());
    let (ciphertext, tag) = AesgcmJweEncryption::A256gcm
        .encrypt(&*cek, Some(&iv), plaintext, aad.as_bytes())
        .map_err(crypto)?;
    Ok(JweParts {
        header: header.as_bytes().to_vec(),
        encrypted_key,
        iv: iv.to_vec(),
        ciphertext,
        tag: tag.unwrap_or_default(),
    })
}

/// Encrypts `plaintext` under `header` taken verbatim.
pub fn encrypt_with_header(
    header: &str,
    plaintext: &[u8],
    to: &Recipient,
) -> Result<String, MintError> {
    Ok(encrypt_parts(header, plaintext, to)?.compact())
}

/// A whole token: signed, and encrypted when `to` is given.
pub fn mint(
    claims: &Claims,
    key: &SigningKey,
    to: Option<&Recipient>,
) -> Result<String, MintError> {
    let jws = sign(&claims.to_json(), key)?;
    match to {
        Some(r) => encrypt(&jws, r),
        None => Ok(jws),
    }
}
