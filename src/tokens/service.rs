//! Creating, revoking and checking API tokens.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use subtle::ConstantTimeEq;

use super::model::{self, ApiToken, Refusal};
use crate::App;
use crate::auth::Principal;
use crate::auth::ratelimit::LoginLimiter;
use crate::error::{AppError, FieldErrors};
use crate::store::{Actor, AuditAction, Store, Tx, Value};

/// `last_used_at` is written back at most this often per token.
const TOUCH_EVERY_SECS: i64 = 60;
/// Longest expiry offered.
pub const MAX_EXPIRY_DAYS: i64 = 3650;
const MAX_NAME_CHARS: usize = 100;

/// What the token layer keeps for the life of the process.
pub struct TokenState {
    /// Failed token attempts per client address. The login limiter's per-account key is unused
    /// here (every attempt goes under one name with no limit on it); the per-address budget is
    /// what stops a flood of guesses.
    limiter: LoginLimiter,
    /// When each token's `last_used_at` was last written, so busy scripts cost one write a minute.
    touched: Mutex<HashMap<u64, DateTime<Utc>>>,
}

impl TokenState {
    pub fn new(max_failures_per_ip: u32, window: Duration) -> TokenState {
        TokenState {
            limiter: LoginLimiter::new(u32::MAX, max_failures_per_ip, window),
            touched: Mutex::new(HashMap::new()),
        }
    }
}

const LIMITER_KEY: &str = "api-token";

/// A token's name and expiry as submitted, checked.
pub struct NewToken {
    pub name: String,
    pub expires_in_days: Option<i64>,
}

impl NewToken {
    pub fn parse(name: &str, expires_in_days: &str) -> Result<NewToken, FieldErrors> {
        let mut errs = FieldErrors::new();
        let name = name.trim().to_string();
        if name.is_empty() {
            errs.add("name", "Give the token a name that says what uses it.");
        } else if name.chars().count() > MAX_NAME_CHARS {
            errs.add("name", format!("At most {MAX_NAME_CHARS} characters."));
        }
        let days = expires_in_days.trim();
        let expires_in_days = if days.is_empty() {
            None
        } else {
            match days.parse::<i64>() {
                Ok(d) if (1..=MAX_EXPIRY_DAYS).contains(&d) => Some(d),
                _ => {
                    errs.add(
                        "expires_in_days",
                        format!("A whole number of days from 1 to {MAX_EXPIRY_DAYS}, or empty."),
                    );
                    None
                }
            }
        };
        if errs.is_empty() { Ok(NewToken { name, expires_in_days }) } else { Err(errs) }
    }
}

/// Creates a token for `user_id` and returns its id and text: the only time the text exists
/// outside the caller's hands.
pub fn create(tx: &mut Tx<'_, '_>, user_id: u64, new: NewToken) -> Result<(u64, String), AppError> {
    let user = tx.get::<crate::auth::User>(user_id)?.ok_or(AppError::NotFound)?;
    if !user.active {
        return Err(AppError::Validation(FieldErrors::single("", "An inactive user cannot have API tokens.")));
    }
    let secret = model::new_secret();
    let now = tx.now();
    let token = ApiToken {
        user_id,
        name: new.name,
        prefix: secret.prefix,
        secret_sha256: secret.sha256,
        created_at: now,
        expires_at: new.expires_in_days.map(|d| now + Duration::days(d)),
        last_used_at: None,
        revoked_at: None,
    };
    let id = tx.insert(&token)?;
    Ok((id, secret.token))
}

/// Revokes a token of `user_id` (the owner's page); revoking twice changes nothing.
pub fn revoke_own(tx: &mut Tx<'_, '_>, user_id: u64, token_id: u64) -> Result<ApiToken, AppError> {
    let mut t = tx.get::<ApiToken>(token_id)?.filter(|t| t.user_id == user_id).ok_or(AppError::NotFound)?;
    if t.revoked_at.is_none() {
        t.revoked_at = Some(tx.now());
        tx.update_as(token_id, &t, AuditAction::Other("revoke".into()), None)?;
    }
    Ok(t)
}

/// The tokens of one user, newest first.
pub fn of_user(store: &Store, user_id: u64) -> Result<Vec<(u64, ApiToken)>, AppError> {
    let r = store.read()?;
    let mut out = Vec::new();
    for id in r.find_by::<ApiToken>("user", &Value::Ref(user_id))? {
        if let Some(t) = r.get::<ApiToken>(id)? {
            out.push((id, t));
        }
    }
    out.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    Ok(out)
}

/// The outcome of presenting a bearer token.
pub enum Outcome {
    Ok(Principal),
    Refused(Refusal),
    /// Too many failed attempts from this address: wait this many minutes.
    Limited(i64),
}

/// Checks a presented token: its shape, then the hash through the unique index, then revocation,
/// expiry and the user's current state. The result acts with the user's permissions as they are
/// now. Failures count against the client address.
pub fn authenticate(app: &App, presented: &str, ip: &str) -> Result<Outcome, AppError> {
    let state = &app.tokens;
    let now = app.store.now();
    if let Err(minutes) = state.limiter.check(LIMITER_KEY, ip, now) {
        return Ok(Outcome::Limited(minutes));
    }
    let refused = |why: Refusal| {
        state.limiter.fail(LIMITER_KEY, ip, now);
        tracing::warn!(reason = why.message(), ip, "API token refused");
        Ok(Outcome::Refused(why))
    };
    if !model::well_formed(presented) {
        return refused(Refusal::Malformed);
    }
    let digest = model::hash(presented);
    let found = app.store.read()?.find_unique::<ApiToken>("secret", &digest)?;
    // The index finds the row by the digest; the digests are compared again in constant time
    // so that nothing but an exact match (not, say, an index normalisation) lets a token in.
    let Some((id, token)) = found.filter(|(_, t)| t.secret_sha256.as_bytes().ct_eq(digest.as_bytes()).into()) else {
        return refused(Refusal::Unknown);
    };
    if token.is_revoked() {
        return refused(Refusal::Revoked);
    }
    if token.is_expired(now) {
        return refused(Refusal::Expired);
    }
    let Some(principal) = app.auth.directory.principal(token.user_id, String::new()) else {
        return refused(Refusal::UserInactive);
    };
    touch(app, id, &token, now);
    Ok(Outcome::Ok(principal))
}

/// Records the use in the background, at most once per [`TOUCH_EVERY_SECS`] per token.
fn touch(app: &App, id: u64, token: &ApiToken, now: DateTime<Utc>) {
    let due = |t: DateTime<Utc>| (now - t).num_seconds() >= TOUCH_EVERY_SECS;
    if !token.last_used_at.is_none_or(due) {
        return;
    }
    {
        let mut touched = app.tokens.touched.lock().unwrap_or_else(|p| p.into_inner());
        if touched.get(&id).is_some_and(|t| !due(*t)) {
            return;
        }
        if touched.len() > 100_000 {
            touched.retain(|_, t| !due(*t));
        }
        touched.insert(id, now);
    }
    let store = app.store.clone();
    tokio::spawn(async move {
        let r = store
            .write(Actor::system("API token use"), move |tx| {
                if let Some(mut t) = tx.get::<ApiToken>(id)?
                    && t.last_used_at.is_none_or(|l| l < now)
                {
                    t.last_used_at = Some(now);
                    tx.update_quiet(id, &t)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, token = id, "cannot record an API token's last use");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_token_forms_are_checked() {
        assert!(NewToken::parse("backup script", "").is_ok_and(|t| t.expires_in_days.is_none()));
        assert_eq!(
            NewToken::parse(" ci ", "30").map(|t| (t.name, t.expires_in_days)).ok(),
            Some(("ci".into(), Some(30)))
        );
        let e = NewToken::parse("", "0").err().unwrap_or_default();
        assert!(!e.get("name").is_empty() && !e.get("expires_in_days").is_empty());
        assert!(NewToken::parse("x", "ten").is_err());
        assert!(NewToken::parse("x", "3651").is_err());
        assert!(NewToken::parse(&"x".repeat(101), "").is_err());
    }
}
