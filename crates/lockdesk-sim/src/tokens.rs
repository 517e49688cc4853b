//! The simulated brand's keys, and minting a step's token at the moment it is sent.

use std::path::Path;

use lockdesk_verify::mint::{self, Claims, MintError, Recipient, SigningKey};
use lockdesk_verify::{parse_public_keys, PublicKey};
use openssl::rsa::Rsa;

use crate::plan::{Signer, TokenSpec, ISSUER};

/// The `kid` of the brand key the desk trusts.
pub const BRAND_KID: &str = "brand-2025";
/// The `kid` of the brand key the desk was never given.
pub const ROTATED_KID: &str = "brand-2026-rotated";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("cannot generate an RSA key: {0}")]
    Generate(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Mint(#[from] MintError),
}

/// What the simulator signs and encrypts with.
pub struct SimKeys {
    /// The brand's key: the desk trusts its public half.
    pub brand: SigningKey,
    /// The brand's public key as a JWKS (with its `kid`), for the desk's trust configuration:
    /// a key set with kids is what lets the desk say `unknown_key` for a key it was never given.
    pub brand_public_jwks: String,
    /// A forger's key (signs tokens that claim the brand's issuer).
    pub forger: SigningKey,
    /// A brand key the desk was never told about, with a `kid`.
    pub rotated: SigningKey,
    /// The desk's public key: tokens are encrypted to it.
    pub desk: Recipient,
}

fn generate_pem(bits: u32) -> Result<(Vec<u8>, Vec<u8>), KeysError> {
    let rsa = Rsa::generate(bits).map_err(|e| KeysError::Generate(e.to_string()))?;
    let private = rsa
        .private_key_to_pem()
        .map_err(|e| KeysError::Generate(e.to_string()))?;
    let public = rsa
        .public_key_to_pem()
        .map_err(|e| KeysError::Generate(e.to_string()))?;
    Ok((private, public))
}

impl SimKeys {
    /// A brand (and a forger, and a rotated key) generated now, encrypting to `desk_public`.
    pub fn generate(desk_public: &PublicKey) -> Result<SimKeys, KeysError> {
        let (brand_private, brand_public_pem) = generate_pem(2048)?;
        Self::assemble(
            SigningKey::from_pem(&brand_private)?.with_kid(BRAND_KID),
            &brand_public_pem,
            desk_public,
        )
    }

    /// Like [`SimKeys::generate`], with the brand key read from a PEM private key file.
    pub fn with_brand_key(
        brand_private_pem: &Path,
        desk_public: &PublicKey,
    ) -> Result<SimKeys, KeysError> {
        let file_err = |message: String| KeysError::File {
            path: brand_private_pem.display().to_string(),
            message,
        };
        let pem = std::fs::read(brand_private_pem).map_err(|e| file_err(e.to_string()))?;
        let brand = SigningKey::from_pem(&pem)
            .map_err(|e| file_err(e.to_string()))?
            .with_kid(BRAND_KID);
        let public = openssl::pkey::PKey::private_key_from_pem(&pem)
            .and_then(|k| k.public_key_to_pem())
            .map_err(|e| file_err(e.to_string()))?;
        Self::assemble(brand, &public, desk_public)
    }

    /// The brand key given, plus a forger's and a rotated key generated now.
    fn assemble(
        brand: SigningKey,
        brand_public_pem: &[u8],
        desk_public: &PublicKey,
    ) -> Result<SimKeys, KeysError> {
        let (forger_private, _) = generate_pem(2048)?;
        let (rotated_private, _) = generate_pem(2048)?;
        Ok(SimKeys {
            brand,
            brand_public_jwks: jwks(brand_public_pem)?,
            forger: SigningKey::from_pem(&forger_private)?,
            rotated: SigningKey::from_pem(&rotated_private)?.with_kid(ROTATED_KID),
            desk: Recipient::new(desk_public)?,
        })
    }

    /// The token for `spec`, minted at `now` (Unix seconds): iAdvize's exact format.
    pub fn mint(&self, spec: &TokenSpec, now: i64) -> Result<String, KeysError> {
        let key = match spec.signer {
            Signer::Brand => &self.brand,
            Signer::Forger => &self.forger,
            Signer::Rotated => &self.rotated,
        };
        let claims = Claims {
            issuer: ISSUER.to_owned(),
            user_id: spec.user_id.clone(),
            visitor_data: spec.visitor_data.clone(),
            expires_at: now + spec.expires_in,
            issued_at: None,
            not_before: None,
            extra: Default::default(),
        };
        Ok(mint::mint(&claims, key, Some(&self.desk))?)
    }
}

fn jwks(public_pem: &[u8]) -> Result<String, KeysError> {
    let key = parse_public_keys(public_pem)
        .map_err(|e| KeysError::Generate(e.to_string()))?
        .remove(0)
        .with_kid(BRAND_KID);
    Ok(serde_json::json!({ "keys": [key.to_jwk()] }).to_string())
}

/// Reads the desk's public key (any form the engine reads).
pub fn read_desk_public(path: &Path) -> Result<PublicKey, KeysError> {
    let file_err = |message: String| KeysError::File {
        path: path.display().to_string(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| file_err(e.to_string()))?;
    let mut keys = parse_public_keys(&bytes).map_err(|e| file_err(e.to_string()))?;
    if keys.len() != 1 {
        return Err(file_err(format!(
            "expected one public key, found {}",
            keys.len()
        )));
    }
    Ok(keys.remove(0))
}
