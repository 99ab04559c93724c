//! Which query parameter carries a delivery's signature, and whether it is right. Pure: no I/O.
//!
//! GoSweetSpot signs the raw body (Base64 HMAC-SHA256 with the webhook secret) and puts the
//! signature in the query string under a name it does not document. With
//! `webhook.signature_param` set only that parameter counts; unset, the request's single query
//! parameter is taken whatever its name, and a request with none or several is refused.

use crate::signature;

/// Why a delivery's signature was refused. Every variant gets the same 401; the variant is
/// only logged (with the parameters' names, never their values) and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    /// No query parameter at all, or not the configured one.
    #[error("no signature parameter")]
    Missing,
    /// Several candidates: several query parameters with none configured, or the configured
    /// one repeated.
    #[error("several candidate signature parameters")]
    Ambiguous,
    /// A signature that does not match the body (also what an unknown or disabled integration
    /// gets, as it is checked against a secret nobody has).
    #[error("signature does not match")]
    Mismatch,
}

impl SignatureRefusal {
    /// A short code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::Ambiguous => "signature_ambiguous",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

/// Picks the signature out of the request's (decoded) query parameters.
pub fn signature_value<'a>(
    query: &'a [(String, String)],
    configured: Option<&str>,
) -> Result<&'a str, SignatureRefusal> {
    let mut candidates = query
        .iter()
        .filter(|(name, _)| configured.is_none_or(|c| c == name));
    let first = candidates.next().ok_or(SignatureRefusal::Missing)?;
    if candidates.next().is_some() {
        return Err(SignatureRefusal::Ambiguous);
    }
    Ok(first.1.as_str())
}

/// Whether `signature` (URL-decoded) signs `body` under `secret`, compared in constant time.
///
/// Base64 never contains a space, but a `+` sent unencoded in a query string is read as a
/// space by form decoding; spaces are therefore taken as the `+` they were.
pub fn signature_matches(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let restored = signature.replace(' ', "+");
    signature::verify(secret, body, &restored)
}

/// Decodes a raw query string (`a=1&b=%2B`) into its parameters: percent-escapes are decoded,
/// but a literal `+` stays a `+` (a Base64 signature may carry one unencoded). Empty segments
/// are skipped; a segment without `=` is a parameter with an empty value.
pub fn parse_query(raw: &str) -> Vec<(String, String)> {
    let decode = percent_decode;
    raw.split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (name, value) = segment.split_once('=').unwrap_or((segment, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// Decodes percent-escapes (invalid UTF-8 becomes U+FFFD); `+` is left alone.
pub fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The names of the query parameters, for a log line: at most 10, each cut to 64 characters
/// and stripped of control characters (the names are the sender's input).
pub fn parameter_names(query: &[(String, String)]) -> Vec<String> {
    query
        .iter()
        .take(10)
        .map(|(name, _)| name.chars().filter(|c| !c.is_control()).take(64).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn the_configured_parameter_or_the_single_one() {
        let one = q(&[("sig", "abc")]);
        assert_eq!(signature_value(&one, None), Ok("abc"));
        assert_eq!(signature_value(&one, Some("sig")), Ok("abc"));
        assert_eq!(
            signature_value(&one, Some("signature")),
            Err(SignatureRefusal::Missing)
        );
        assert_eq!(signature_value(&[], None), Err(SignatureRefusal::Missing));
        let two = q(&[("sig", "abc"), ("x", "y")]);
        assert_eq!(
            signature_value(&two, None),
            Err(SignatureRefusal::Ambiguous)
        );
        assert_eq!(signature_value(&two, Some("sig")), Ok("abc"));
        let repeated = q(&[("sig", "abc"), ("sig", "abd")]);
        assert_eq!(
            signature_value(&repeated, Some("sig")),
            Err(SignatureRefusal::Ambiguous)
        );
    }

    #[test]
    fn query_decoding_keeps_a_literal_plus() {
        assert_eq!(
            parse_query("hmac=ab%2Bc%2Fd%3D&&x=1+2&flag"),
            q(&[("hmac", "ab+c/d="), ("x", "1+2"), ("flag", "")])
        );
        assert!(parse_query("").is_empty());
        assert_eq!(parse_query("%ZZ=%"), q(&[("%ZZ", "%")]));
    }

    #[test]
    fn spaces_are_taken_as_plus() {
        let secret = b"whsec";
        // Find a body whose signature carries a '+'.
        let (body, sig) = (0..1000)
            .map(|i| format!("[{i}]"))
            .map(|b| {
                let s = signature::sign(secret, b.as_bytes()).unwrap();
                (b, s)
            })
            .find(|(_, s)| s.contains('+'))
            .unwrap();
        assert!(signature_matches(secret, body.as_bytes(), &sig));
        assert!(signature_matches(
            secret,
            body.as_bytes(),
            &sig.replace('+', " ")
        ));
        assert!(!signature_matches(b"other", body.as_bytes(), &sig));
    }

    #[test]
    fn names_are_bounded() {
        let many: Vec<(String, String)> = (0..20)
            .map(|i| (format!("n{i}\n{}", "x".repeat(100)), "secret".into()))
            .collect();
        let names = parameter_names(&many);
        assert_eq!(names.len(), 10);
        assert!(names.iter().all(|n| n.len() == 64 && !n.contains('\n')));
    }
}
