//! The three cryptographic operations the engine performs, each with the length checks josekit
//! leaves to the caller. Public so the Wycheproof vectors exercise exactly what the engine runs.
//!
//! The two RSA operations run on OpenSSL EVP contexts prepared once per key and thread.
//! josekit (which wraps the same OpenSSL) builds and configures a fresh context on every call:
//! measured at about 5 µs per token on RSA-2048, that alone kept full verification under 95% of
//! `openssl speed`'s private+public rate. josekit's versions stay available as
//! [`reference`] and the tests check both paths give the same answers on every vector.
//! AES-256-GCM likewise runs on one OpenSSL cipher context per thread, initialised with the
//! cipher once and then only re-keyed: josekit's `decrypt` allocates a context and looks the
//! cipher up (an implicit fetch under OpenSSL 3) on every token. Contexts are dropped after any
//! failure, so a failed call never leaves state for the next one.

use std::cell::RefCell;

use openssl::cipher::Cipher;
use openssl::cipher_ctx::{CipherCtx, CipherCtxRef};
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
    // A few keys at most: a short list searched by key id beats hashing the id.
    static OAEP_CTX: RefCell<Vec<(u64, PkeyCtx<Private>)>> = const { RefCell::new(Vec::new()) };
    static RS256_CTX: RefCell<Vec<(u64, PkeyCtx<Public>)>> = const { RefCell::new(Vec::new()) };
    static GCM_CTX: RefCell<Option<CipherCtx>> = const { RefCell::new(None) };
}

/// Runs `op` on the thread's context for key `id` (made by `make` when missing); a failed `op`
/// drops the context so the next call starts from a fresh one.
fn with_ctx<C, T>(
    cache: &RefCell<Vec<(u64, C)>>,
    id: u64,
    make: impl FnOnce() -> Option<C>,
    op: impl FnOnce(&mut C) -> Option<T>,
) -> Option<T> {
    let mut cache = cache.borrow_mut();
    let at = match cache.iter().position(|(k, _)| *k == id) {
        Some(at) => at,
        None => {
            if cache.len() >= MAX_CACHED_CTX {
                cache.clear();
            }
            cache.push((id, make()?));
            cache.len() - 1
        }
    };
    let out = op(&mut cache[at].1);
    if out.is_none() {
        cache.swap_remove(at);
    }
    out
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

/// Room for the largest modulus the engine accepts ([`MAX_RSA_BITS`](crate::MAX_RSA_BITS)), in
/// bytes: what [`rsa_oaep256_decrypt_into`] writes into.
pub const MAX_MODULUS_LEN: usize = (crate::keys::MAX_RSA_BITS / 8) as usize;

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label. `None` for any failure, with no detail,
/// so no padding oracle can be built from the answer.
pub fn rsa_oaep256_decrypt(key: &DecryptionKey, encrypted_key: &[u8]) -> Option<Vec<u8>> {
    let mut out = [0u8; MAX_MODULUS_LEN];
    rsa_oaep256_decrypt_into(key, encrypted_key, &mut out).map(<[u8]>::to_vec)
}

/// [`rsa_oaep256_decrypt`] into `out` (on the caller's stack: the engine allocates nothing for
/// the content key), returning the decrypted bytes.
pub fn rsa_oaep256_decrypt_into<'o>(
    key: &DecryptionKey,
    encrypted_key: &[u8],
    out: &'o mut [u8; MAX_MODULUS_LEN],
) -> Option<&'o [u8]> {
    let len = key.modulus_len();
    // OpenSSL wants room for a whole modulus, whatever the message's length.
    if encrypted_key.len() != len || len > out.len() {
        return None;
    }
    let n = OAEP_CTX.with(|cache| {
        with_ctx(
            cache,
            key.id(),
            || oaep_ctx(key),
            |ctx| ctx.decrypt(encrypted_key, Some(&mut out[..len])).ok(),
        )
    })?;
    out.get(..n)
}

/// AES-256-GCM decryption with a 256-bit key, 96-bit IV and 128-bit tag, nothing else.
pub fn a256gcm_open(
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Option<Vec<u8>> {
    if !gcm_lengths_ok(cek, iv, tag) {
        return None;
    }
    GCM_CTX.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            let mut ctx = CipherCtx::new().ok()?;
            // The cipher once; each token then only sets the key and IV (96 bits is GCM's
            // default IV length).
            ctx.decrypt_init(Some(Cipher::aes_256_gcm()), None, None)
                .ok()?;
            *slot = Some(ctx);
        }
        let out = slot
            .as_mut()
            .and_then(|ctx| gcm_open_with(ctx, cek, iv, aad, ciphertext, tag));
        if out.is_none() {
            *slot = None;
        }
        out
    })
}

/// The only A256GCM lengths accepted, by this path and by [`reference::a256gcm_open`] alike.
fn gcm_lengths_ok(cek: &[u8], iv: &[u8], tag: &[u8]) -> bool {
    cek.len() == CEK_LEN && iv.len() == IV_LEN && tag.len() == TAG_LEN
}

fn gcm_open_with(
    ctx: &mut CipherCtxRef,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> Option<Vec<u8>> {
    ctx.decrypt_init(None, Some(cek), Some(iv)).ok()?;
    ctx.cipher_update(aad, None).ok()?;
    // GCM is a stream mode: the plaintext is exactly as long as the ciphertext.
    let mut out = vec![0; ciphertext.len()];
    let n = ctx.cipher_update(ciphertext, Some(&mut out)).ok()?;
    ctx.set_tag(tag).ok()?;
    // The tag is checked here (in constant time, by OpenSSL); GCM writes nothing more.
    let mut last = [0u8; 16];
    let m = ctx.cipher_final(&mut last).ok()?;
    if n != ciphertext.len() || m != 0 {
        return None;
    }
    Some(out)
}

/// RSASSA-PKCS1-v1_5 with SHA-256; the signature must be exactly the modulus length.
pub fn rs256_verify(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    if signature.len() != key.modulus_len() {
        return false;
    }
    // The low-level SHA-256 (OpenSSL 3's one-shot `SHA256()` looks the digest up on every call).
    let mut hasher = openssl::sha::Sha256::new();
    hasher.update(message);
    let digest = hasher.finish();
    RS256_CTX
        .with(|cache| {
            with_ctx(
                cache,
                key.id(),
                || rs256_ctx(key),
                // A signature that does not verify is an answer, not a broken context: keep it.
                |ctx| ctx.verify(&digest, signature).ok(),
            )
        })
        .unwrap_or(false)
}

/// josekit's own operations, kept as the reference the fast path is tested against.
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

    /// josekit's A256GCM (a fresh context and cipher look-up per call), with the same length
    /// rules as [`super::a256gcm_open`].
    pub fn a256gcm_open(
        cek: &[u8],
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
    ) -> Option<Vec<u8>> {
        use josekit::jwe::JweContentEncryption;
        if !super::gcm_lengths_ok(cek, iv, tag) {
            return None;
        }
        AesgcmJweEncryption::A256gcm
            .decrypt(cek, Some(iv), ciphertext, aad, Some(tag))
            .ok()
    }
}
