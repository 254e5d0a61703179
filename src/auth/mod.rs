//! Accounts, sessions, CSRF and permissions.

pub mod handlers;
pub mod model;
pub mod oidc;
pub mod password;
pub mod ratelimit;
pub mod session;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use model::{Group, User};

use crate::store::{Change, Entity, Listener, ReadTx, StoreError, decode};

/// The signed-in user as a request sees them, with their effective permissions.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: u64,
    pub name: String,
    pub email: String,
    pub superuser: bool,
    pub perms: Vec<String>,
    /// Key of the session this request came with.
    pub session_key: String,
}

impl Principal {
    pub fn can(&self, perm: &str) -> bool {
        self.superuser || self.perms.iter().any(|p| p == perm)
    }
}

/// Users and groups in memory, for permission checks on every request.
#[derive(Default)]
pub struct Directory {
    users: RwLock<HashMap<u64, User>>,
    groups: RwLock<HashMap<u64, Group>>,
}

impl Directory {
    pub fn user(&self, id: u64) -> Option<User> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    pub fn user_count(&self) -> usize {
        self.users.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Permissions of a user: their own plus their groups'. `None` for inactive or unknown users.
    pub fn principal(&self, user_id: u64, session_key: String) -> Option<Principal> {
        let u = self.user(user_id).filter(|u| u.active)?;
        let mut perms = u.permissions.clone();
        let groups = self.groups.read().unwrap_or_else(|p| p.into_inner());
        for g in &u.groups {
            if let Some(g) = groups.get(g) {
                perms.extend(g.permissions.iter().cloned());
            }
        }
        perms.sort();
        perms.dedup();
        Some(Principal { user_id, name: u.name, email: u.email, superuser: u.superuser, perms, session_key })
    }
}

pub struct DirectoryListener(pub Arc<Directory>);

impl Listener for DirectoryListener {
    fn load(&self, store: &ReadTx) -> Result<(), StoreError> {
        *self.0.users.write().unwrap_or_else(|p| p.into_inner()) = store.all::<User>()?.into_iter().collect();
        *self.0.groups.write().unwrap_or_else(|p| p.into_inner()) = store.all::<Group>()?.into_iter().collect();
        Ok(())
    }

    fn apply(&self, changes: &[Change]) {
        for c in changes {
            if c.table == User::TABLE {
                let mut m = self.0.users.write().unwrap_or_else(|p| p.into_inner());
                match c.row.as_deref().map(decode::<User>) {
                    Some(Ok(u)) => {
                        m.insert(c.id, u);
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "cannot decode user"),
                    None => {
                        m.remove(&c.id);
                    }
                }
            } else if c.table == Group::TABLE {
                let mut m = self.0.groups.write().unwrap_or_else(|p| p.into_inner());
                match c.row.as_deref().map(decode::<Group>) {
                    Some(Ok(g)) => {
                        m.insert(c.id, g);
                    }
                    Some(Err(e)) => tracing::error!(error = %e, "cannot decode group"),
                    None => {
                        m.remove(&c.id);
                    }
                }
            }
        }
    }
}

/// The data directory's secret key (32 random bytes, created on first start, mode 0600).
pub fn load_or_create_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("secret.key");
    if let Ok(bytes) = std::fs::read(&path) {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| {
            anyhow::anyhow!(
                "{} is not a 32-byte key; delete it to make a new one (forms open in browsers then fail once and work after a reload)",
                path.display()
            )
        })?;
        return Ok(arr);
    }
    std::fs::create_dir_all(data_dir)?;
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let tmp = data_dir.join("secret.key.tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(&key)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(key)
}

/// Everything the auth layer keeps for the life of the process.
pub struct AuthState {
    pub key: [u8; 32],
    pub sessions: Arc<session::Sessions>,
    pub directory: Arc<Directory>,
    pub limiter: ratelimit::LoginLimiter,
    /// One-time token for creating the first superuser; `None` once any user exists.
    pub setup_token: Mutex<Option<String>>,
    pub secure_cookies: bool,
}

pub const CSRF_COOKIE: &str = "bravely_csrf";

impl AuthState {
    /// The CSRF token for a binding (a session key, or the anonymous CSRF cookie's nonce).
    pub fn csrf_token(&self, binding: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"csrf\x00");
        mac.update(binding.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn csrf_ok(&self, binding: &str, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.csrf_token(binding);
        expected.as_bytes().ct_eq(presented.trim().as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AuthState {
        AuthState {
            key: [7; 32],
            sessions: Arc::new(session::Sessions::new(chrono::Duration::hours(1), chrono::Duration::hours(2))),
            directory: Arc::new(Directory::default()),
            limiter: ratelimit::LoginLimiter::new(5, 20, chrono::Duration::minutes(15)),
            setup_token: Mutex::new(None),
            secure_cookies: false,
        }
    }

    #[test]
    fn csrf_tokens_are_bound() {
        let s = state();
        let t = s.csrf_token("session-a");
        assert!(s.csrf_ok("session-a", &t));
        assert!(!s.csrf_ok("session-b", &t));
        assert!(!s.csrf_ok("session-a", ""));
    }
}
