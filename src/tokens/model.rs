//! The stored API token and the token text.
//!
//! A token reads `bvt_` followed by 43 base64url characters: 32 bytes (256 bits) from the
//! operating system's CSPRNG. Only its SHA-256 is stored. A slow password hash would add
//! nothing here: with 256 random bits there is no dictionary to try, so one SHA-256 is as
//! strong as argon2 and costs nothing per request.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::admin::def::take;
use crate::admin::{AdminRecord, Field, FormCtx, Kind, OnDelete, ResourceDef, Values};
use crate::error::FieldErrors;
use crate::store::{Entity, IndexDef, Value};

pub const TOKEN_PREFIX: &str = "bvt_";
/// Random bytes in a token.
const SECRET_BYTES: usize = 32;
/// Length of the base64url text of [`SECRET_BYTES`] (no padding).
const SECRET_CHARS: usize = 43;
/// Characters of the random part kept as the visible prefix (`bvt_Ab12Cd34`).
const VISIBLE_CHARS: usize = 8;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub user_id: u64,
    pub name: String,
    /// The token's first characters (`bvt_Ab12Cd34`), to tell tokens apart; not a secret.
    pub prefix: String,
    /// Hex SHA-256 of the whole token text. The token itself is never stored.
    pub secret_sha256: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Written at most about once a minute, without an audit entry.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

crate::envelope_v1!(ApiToken, ApiTokenRecord);

impl Entity for ApiToken {
    const TABLE: &'static str = "auth.api_tokens";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef { name: "secret", field: "secret_sha256", unique: true },
        IndexDef { name: "user", field: "user", unique: false },
    ];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("user", Value::Ref(self.user_id)),
            ("name", Value::text(self.name.clone())),
            ("prefix", Value::text(self.prefix.clone())),
            ("created_at", Value::Time(self.created_at)),
            ("expires_at", self.expires_at.map(Value::Time).unwrap_or_default()),
            ("last_used_at", self.last_used_at.map(Value::Time).unwrap_or_default()),
            ("revoked", Value::Bool(self.revoked_at.is_some())),
            ("revoked_at", self.revoked_at.map(Value::Time).unwrap_or_default()),
        ]
    }
    fn secret_fields(&self) -> Vec<(&'static str, Value)> {
        vec![("secret_sha256", Value::text(self.secret_sha256.clone()))]
    }
}

/// Why a token does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Unknown,
    Revoked,
    Expired,
    /// Its user is inactive or gone.
    UserInactive,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Malformed => "the bearer token is malformed (expected bvt_ followed by 43 characters)",
            Refusal::Unknown => "the bearer token is not valid",
            Refusal::Revoked => "the bearer token has been revoked",
            Refusal::Expired => "the bearer token has expired",
            Refusal::UserInactive => "the bearer token's user is inactive",
        }
    }
}

impl ApiToken {
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    /// Active, revoked or expired, for lists.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.is_revoked() {
            "revoked"
        } else if self.is_expired(now) {
            "expired"
        } else {
            "active"
        }
    }
}

/// A new token text from the CSPRNG, with its visible prefix and hash.
pub struct NewSecret {
    pub token: String,
    pub prefix: String,
    pub sha256: String,
}

pub fn new_secret() -> NewSecret {
    let mut b = [0u8; SECRET_BYTES];
    rand::fill(&mut b);
    let token = format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b));
    NewSecret { prefix: token[..TOKEN_PREFIX.len() + VISIBLE_CHARS].to_string(), sha256: hash(&token), token }
}

/// Hex SHA-256 of a token text.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Checks the shape of a presented token before it is looked up.
pub fn well_formed(token: &str) -> bool {
    token.strip_prefix(TOKEN_PREFIX).is_some_and(|rest| {
        rest.len() == SECRET_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

impl AdminRecord for ApiToken {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "api-tokens",
            module: "Accounts",
            singular: "API token",
            plural: "API tokens",
            fields: vec![
                Field::new("user", "User", Kind::Ref { target: "users", on_delete: OnDelete::Cascade }).readonly(),
                Field::new("name", "Name", Kind::Text).readonly(),
                Field::new("prefix", "Prefix", Kind::Text).readonly(),
                Field::new("created_at", "Created", Kind::Time).readonly(),
                Field::new("expires_at", "Expires", Kind::Time).readonly(),
                Field::new("last_used_at", "Last used", Kind::Time).readonly(),
                Field::new("revoked", "Revoked", Kind::Bool)
                    .help("A revoked token stops working at once and cannot be restored."),
                Field::new("revoked_at", "Revoked at", Kind::Time).readonly(),
            ],
            list_display: vec!["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "revoked"],
            search_fields: vec!["name", "prefix"],
            filters: vec!["user", "revoked"],
            ordering: "-created_at",
            per_page: 100,
            importable: false,
        }
    }

    fn label(&self) -> String {
        format!("{} ({}…)", self.name, self.prefix)
    }

    /// The admin can only revoke: tokens are made on the account page or with the CLI, where
    /// the secret can be shown once.
    fn from_values(v: &Values, old: Option<&Self>, ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let Some(old) = old else {
            return Err(FieldErrors::single(
                "",
                "API tokens are created by their user on the API tokens page, or with `bravely token add`.",
            ));
        };
        let mut t = old.clone();
        match (take::boolean(v, "revoked"), old.is_revoked()) {
            (true, false) => t.revoked_at = Some(ctx.tx.now()),
            (false, true) => {
                return Err(FieldErrors::single("revoked", "A revoked token cannot be restored; create a new one."));
            }
            _ => {}
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_long_random_and_well_formed() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a.token, b.token);
        assert!(well_formed(&a.token), "{}", a.token);
        assert_eq!(a.token.len(), 4 + 43);
        assert!(a.token.starts_with(&a.prefix) && a.prefix.len() == 12);
        assert_eq!(a.sha256, hash(&a.token));
        assert_eq!(a.sha256.len(), 64);
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        let t = new_secret().token;
        assert!(!well_formed(&t[..t.len() - 1]));
        assert!(!well_formed(&format!("{t}x")));
        assert!(!well_formed(&t.replacen("bvt_", "xyz_", 1)));
        assert!(!well_formed(&format!("bvt_{}", "é".repeat(21))));
        assert!(!well_formed(""));
    }
}
