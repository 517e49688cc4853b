//! The three cryptographic operations the engine performs, each with the length checks josekit
//! leaves to the caller. Public so the Wycheproof vectors exercise exactly what the engine runs.
//!
//! The two RSA operations run on OpenSSL EVP contexts prepared once per key and thread.
//! josekit (which wraps the same OpenSSL) builds and configures a fresh context on every call:
//! measured at about 5 µs per token on RSA-2048, that alone kept full verification under 95% of
//! `openssl speed`'s private+public rate. josekit's versions stay available as
//! [`reference`] and the tests check both paths give the same answers on every vector.
//! AES-256-GCM goes through josekit.

use std::cell::RefCell;
use std::collections::HashMap;

use josekit::jwe::enc::aesgcm::AesgcmJweEncryption;
use josekit::jwe::JweContentEncryption;
use openssl::md::Md;
use openssl::pkey::{Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;

use crate::keys::{DecryptionKey, PublicKey};

/// A256GCM key length in bytes.
pub const CEK_LEN: usize = 32;
/// The only IV length accepted (96 bits).
pub const IV_LEN: usize = 12;
/// The only tag length accepted (128 bits; josekit alone accepts a single byte).
pub const TAG_LEN: usize = 16;

/// Bound on cached contexts per thread (keys are few; rotation adds some over time).
const MAX_CACHED_CTX: usize = 64;

thread_local! {
    static OAEP_CTX: RefCell<HashMap<u64, PkeyCtx<Private>>> = RefCell::new(HashMap::new());
    static RS256_CTX: RefCell<HashMap<u64, PkeyCtx<Public>>> = RefCell::new(HashMap::new());
}

fn oaep_ctx(key: &DecryptionKey) -> Option<PkeyCtx<Private>> {
    let mut ctx = PkeyCtx::new(key.pkey()).ok()?;
    ctx.decrypt_init().ok()?;
    ctx.set_rsa_padding(Padding::PKCS1_OAEP).ok()?;
    ctx.set_rsa_oaep_md(Md::sha256()).ok()?;
    ctx.set_rsa_mgf1_md(Md::sha256()).ok()?;
    Some(ctx)
}

fn rs256_ctx(key: &PublicKey) -> Option<PkeyCtx<Public>> {
    let mut ctx = PkeyCtx::new(key.pkey()).ok()?;
    ctx.verify_init().ok()?;
    ctx.set_rsa_padding(Padding::PKCS1).ok()?;
    ctx.set_signature_md(Md::sha256()).ok()?;
    Some(ctx)
}

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label. `None` for any failure, with no detail,
/// so no padding oracle can be built from the answer.
pub fn rsa_oaep256_decrypt(key: &DecryptionKey, encrypted_key: &[u8]) -> Option<Vec<u8>> {
    if encrypted_key.len() != key.modulus_len() {
        return None;
    }
    OAEP_CTX.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(&key.id()) {
            if cache.len() >= MAX_CACHED_CTX {
                cache.clear();
            }
            cache.insert(key.id(), oaep_ctx(key)?);
        }
        let ctx = cache.get_mut(&key.id())?;
        let mut out = Vec::with_capacity(key.modulus_len());
        match ctx.decrypt_to_vec(encrypted_key, &mut out) {
            Ok(_) => Some(out),
            Err(_) => {
                // Never reuse a context after a failure: start the next call from a fresh one.
                cache.remove(&key.id());
                None
            }
        }
    })
}

/// AES-256-GCM decryption with a 256-bit key, 96-bit IV and 128-bit tag, nothing else.
pub fn a256gcm_open(
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Option<Vec<u8>> {
    if cek.len() != CEK_LEN || iv.len() != IV_LEN || tag.len() != TAG_LEN {
        return None;
    }
    AesgcmJweEncryption::A256gcm
        .decrypt(cek, Some(iv), ciphertext, aad, Some(tag))
        .ok()
}

/// RSASSA-PKCS1-v1_5 with SHA-256; the signature must be exactly the modulus length.
pub fn rs256_verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    if signature.len() != key.modulus_len() {
        return false;
    }
    let digest = openssl::sha::sha256(message);
    RS256_CTX.with(|cache| {
        let mut cache = cache.borrow_mut();
        if !cache.contains_key(&key.id()) {
            if cache.len() >= MAX_CACHED_CTX {
                cache.clear();
            }
            match rs256_ctx(key) {
                Some(ctx) => cache.insert(key.id(), ctx),
                None => return false,
            };
        }
        let Some(ctx) = cache.get_mut(&key.id()) else {
            return false;
        };
        match ctx.verify(&digest, signature) {
            Ok(true) => true,
            Ok(false) => false,
            Err(_) => {
                cache.remove(&key.id());
                false
            }
        }
    })
}

/// josekit's own RSA operations, kept as the reference the fast path is tested against.
pub mod reference {
    use josekit::jwe::enc::aesgcm::AesgcmJweEncryption;
    use josekit::jwe::{JweDecrypter, JweHeader};

    use crate::keys::{DecryptionKey, PublicKey};

    pub fn rsa_oaep256_decrypt(key: &DecryptionKey, encrypted_key: &[u8]) -> Option<Vec<u8>> {
        if encrypted_key.len() != key.modulus_len() {
            return None;
        }
        key.decrypter()
            .decrypt(
                Some(encrypted_key),
                &AesgcmJweEncryption::A256gcm,
                &JweHeader::new(),
            )
            .ok()
            .map(|cek| cek.into_owned())
    }

    pub fn rs256_verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == key.modulus_len() && key.verify_rs256_josekit(message, signature)
    }
}
