//! GoSweetSpot webhook signatures: Base64 HMAC-SHA256 of the raw body with the webhook secret.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The Base64 HMAC-SHA256 of `body` under `secret`, as GoSweetSpot puts in the query string.
pub fn sign(secret: &[u8], body: &[u8]) -> Result<String, hmac::digest::InvalidLength> {
    Ok(base64::engine::general_purpose::STANDARD.encode(mac(secret, body)?))
}

/// True when `signature` (already URL-decoded) is the Base64 HMAC of `body` under `secret`,
/// compared in constant time.
pub fn verify(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(secret, body)
        .is_ok_and(|expected| given.len() == expected.len() && bool::from(given.ct_eq(&expected)))
}

fn mac(secret: &[u8], body: &[u8]) -> Result<Vec<u8>, hmac::digest::InvalidLength> {
    let mut mac = HmacSha256::new_from_slice(secret)?;
    mac.update(body);
    Ok(mac.finalize().into_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2 (hex 5bdcc146…3843), Base64-encoded.
        let sig = sign(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(sig, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jeff", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(
            b"Jefe",
            b"what do ya want for nothing?",
            &sig[..20]
        ));
        assert!(!verify(b"Jefe", b"x", "not base64!"));
    }
}
