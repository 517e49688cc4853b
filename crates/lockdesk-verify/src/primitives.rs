//! The three cryptographic operations the engine performs, each with the length checks josekit
//! leaves to the caller. Public so the Wycheproof vectors exercise exactly what the engine runs.

use josekit::jwe::enc::aesgcm::AesgcmJweEncryption;
use josekit::jwe::{JweContentEncryption, JweDecrypter, JweHeader};

use crate::keys::{DecryptionKey, PublicKey};

/// A256GCM key length in bytes.
pub const CEK_LEN: usize = 32;
/// The only IV length accepted (96 bits).
pub const IV_LEN: usize = 12;
/// The only tag length accepted (128 bits; josekit alone accepts a single byte).
pub const TAG_LEN: usize = 16;

/// RSA-OAEP with SHA-256 and MGF1-SHA-256, empty label. `None` for any failure, with no detail,
/// so no padding oracle can be built from the answer.
pub fn rsa_oaep256_decrypt(key: &DecryptionKey, encrypted_key: &[u8]) -> Option<Vec<u8>> {
    if encrypted_key.len() != key.modulus_len() {
        return None;
    }
    let header = JweHeader::new();
    key.decrypter()
        .decrypt(Some(encrypted_key), &AesgcmJweEncryption::A256gcm, &header)
        .ok()
        .map(|cek| cek.into_owned())
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
    signature.len() == key.modulus_len() && key.verify_rs256(message, signature)
}
