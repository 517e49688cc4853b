//! The RSA floor of one token, for measuring the verifier against (not used by verification):
//! one private operation (a PKCS#1 v1.5 signature of a SHA-256 digest, as `openssl speed` signs)
//! and one public operation (its verification), on OpenSSL contexts prepared once. Defined here so
//! that `lockdesk-cli bench verify` and `examples/verify_loop.rs` measure the same floor.

use openssl::error::ErrorStack;
use openssl::md::Md;
use openssl::pkey::{PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;

/// The floor's contexts for one key, and the digest it signs.
pub struct RsaFloor {
    sign: PkeyCtx<Private>,
    verify: PkeyCtx<Public>,
    digest: [u8; 32],
    sig: Vec<u8>,
}

impl RsaFloor {
    /// The floor with the RSA key in `private_pem` (signing) and its public half (verifying).
    pub fn new(private_pem: &[u8]) -> Result<RsaFloor, ErrorStack> {
        let key = PKey::private_key_from_pem(private_pem)?;
        let public = PKey::public_key_from_der(&key.public_key_to_der()?)?;
        let mut sign = PkeyCtx::new(&key)?;
        sign.sign_init()?;
        sign.set_rsa_padding(Padding::PKCS1)?;
        sign.set_signature_md(Md::sha256())?;
        let mut verify = PkeyCtx::new(&public)?;
        verify.verify_init()?;
        verify.set_rsa_padding(Padding::PKCS1)?;
        verify.set_signature_md(Md::sha256())?;
        Ok(RsaFloor {
            sign,
            verify,
            digest: openssl::sha::sha256(b"the RSA floor"),
            sig: Vec::new(),
        })
    }

    /// One private and one public operation: the floor of one token. True when both succeed.
    pub fn op(&mut self) -> bool {
        self.private_op() && self.public_op()
    }

    /// The private operation alone: signs the digest (the signature is kept for
    /// [`RsaFloor::public_op`]).
    pub fn private_op(&mut self) -> bool {
        self.sig.clear();
        self.sign.sign_to_vec(&self.digest, &mut self.sig).is_ok()
    }

    /// The public operation alone: verifies the last signature made (false before any).
    pub fn public_op(&mut self) -> bool {
        self.verify.verify(&self.digest, &self.sig).unwrap_or(false)
    }
}
