//! argon2id password hashing.
//!
//! Parameters: m = 7 MiB, t = 5, p = 1, one of the equivalent argon2id configurations OWASP's
//! password storage guidance lists (alongside m = 19 MiB, t = 2). The smaller memory keeps the
//! server's peak RSS low while a sign-in is checked; the extra passes keep the cost. Hashes carry
//! their parameters, so older hashes still verify.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

fn hasher() -> Argon2<'static> {
    let params = Params::new(7 * 1024, 5, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub const MIN_LENGTH: usize = 10;

pub fn hash(password: &str) -> anyhow::Result<String> {
    let mut salt_bytes = [0u8; 16];
    rand::fill(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

pub fn verify(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => hasher().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Rules for new passwords; the message is shown next to the field.
pub fn check_strength(password: &str, email: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!("Use at least {MIN_LENGTH} characters."));
    }
    if !email.is_empty() && password.eq_ignore_ascii_case(email) {
        return Err("The password must not be your email address.".into());
    }
    Ok(())
}

/// A hash to verify against when the account does not exist, so timing does not reveal it.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("dummy password for timing").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("wrong", &h));
        assert!(!verify("x", "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(check_strength("short", "a@b.c").is_err());
        assert!(check_strength("long enough pass", "a@b.c").is_ok());
    }
}
