//! The body hash: SHA-256 of the raw body, as the `body` claim names it (base64url with `=`
//! padding, compared padding-insensitively and in constant time).

use std::mem::MaybeUninit;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::base64url;

/// base64url(SHA-256(`body`)) with `=` padding, as QStash puts it in the `body` claim.
#[must_use]
pub fn body_hash(body: &[u8]) -> String {
    encode_hash(&Sha256::digest(body))
}

/// base64url of a SHA-256 digest with its one `=` of padding, as in the `body` claim.
pub(crate) fn encode_hash(digest: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE.encode(digest)
}

/// The digest the `body` claim names, ignoring `=` padding as the official receivers do:
/// 43 characters of canonical base64url. `None` for anything else, which matches no body.
pub(crate) fn claimed_digest(claim: &str) -> Option<[u8; 32]> {
    let claim = claim.trim_end_matches('=').as_bytes();
    if claim.len() != 43 {
        return None;
    }
    let mut buffer = [MaybeUninit::uninit(); 32];
    let decoded = base64url::decode(claim, &mut buffer)?;
    decoded.try_into().ok()
}

/// Compares two SHA-256 digests in constant time, as four words.
pub(crate) fn digest_matches(claimed: &[u8; 32], digest: &[u8]) -> bool {
    let words = |bytes: &[u8]| -> [u64; 4] {
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut array = [0u8; 8];
            array.copy_from_slice(chunk);
            *word = u64::from_le_bytes(array);
        }
        words
    };
    words(claimed).ct_eq(&words(digest)).into()
}

#[cfg(test)]
pub(crate) fn body_hash_matches(claim: &str, digest: &[u8]) -> bool {
    claimed_digest(claim).is_some_and(|claimed| digest_matches(&claimed, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_hash_is_padded_and_compares_either_way() {
        let hash = body_hash(b"Hello World");
        assert_eq!(hash, "pZGm1Av0IEBKARczz7exkNYsZb8LzaMrV7J32a2fFG4=");
        let digest = Sha256::digest(b"Hello World");
        assert_eq!(encode_hash(&digest), hash);
        assert!(body_hash_matches(&hash, &digest));
        assert!(body_hash_matches(hash.trim_end_matches('='), &digest));
        assert!(body_hash_matches(&format!("{hash}=="), &digest));
        assert!(!body_hash_matches(&hash, &Sha256::digest(b"Hello World!")));
        assert!(!body_hash_matches("", &Sha256::digest(b"")));
        // One bit off in the last character's unused bits: not the canonical encoding.
        let mut off = hash.trim_end_matches('=').to_owned();
        let last = off.pop().unwrap();
        off.push(if last == '4' { '5' } else { '4' });
        assert!(!body_hash_matches(&off, &digest));
    }
}
