//! Server-side sessions: a random token in an HttpOnly cookie, its SHA-256 as the key in redb,
//! and an in-memory copy so checking a session costs no disk read.

use std::collections::HashMap;
use std::sync::RwLock;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::store::{Change, Listener, ReadTx, Store, StoreError, Tx};

pub const COOKIE: &str = "bravely_session";
const TABLE: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("auth.sessions");
/// `last_seen` is written back at most this often per session.
const TOUCH_EVERY_SECS: i64 = 300;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: u64,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub ip: String,
    pub user_agent: String,
}

#[derive(Serialize, Deserialize)]
enum SessionRecord {
    V1(Session),
}

pub fn encode(s: &Session) -> Vec<u8> {
    postcard::to_stdvec(&SessionRecord::V1(s.clone())).unwrap_or_default()
}

pub fn decode(b: &[u8]) -> Result<Session, StoreError> {
    match postcard::from_bytes::<SessionRecord>(b) {
        Ok(SessionRecord::V1(s)) => Ok(s),
        Err(e) => Err(StoreError::Decode { table: "auth.sessions", reason: e.to_string() }),
    }
}

/// The key a session is stored under: hex SHA-256 of the cookie token.
pub fn key_of(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

pub struct Sessions {
    idle: Duration,
    absolute: Duration,
    cache: RwLock<HashMap<String, Session>>,
}

impl Sessions {
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        Sessions { idle, absolute, cache: RwLock::new(HashMap::new()) }
    }

    /// The session for a cookie token, if it exists and has not expired.
    pub fn check(&self, token: &str, now: DateTime<Utc>) -> Option<(String, Session)> {
        let key = key_of(token);
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        let s = cache.get(&key)?;
        if now - s.last_seen > self.idle || now - s.created > self.absolute {
            return None;
        }
        Some((key, s.clone()))
    }

    /// Records activity; returns true when the stored `last_seen` should be written back.
    pub fn touch(&self, key: &str, now: DateTime<Utc>) -> bool {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        match cache.get_mut(key) {
            Some(s) if (now - s.last_seen).num_seconds() >= TOUCH_EVERY_SECS => {
                s.last_seen = now;
                true
            }
            _ => false,
        }
    }

    /// Starts a session (the caller sets the cookie). Any old session token is discarded.
    pub async fn create(
        &self,
        store: &Store,
        user_id: u64,
        ip: String,
        user_agent: String,
        replaces: Option<String>,
    ) -> Result<String, AppError> {
        let token = new_token();
        let key = key_of(&token);
        let now = store.now();
        let s = Session { user_id, created: now, last_seen: now, ip, user_agent };
        let (k, s2, old) = (key.clone(), s.clone(), replaces.clone());
        store
            .write(crate::store::Actor::system("sign-in"), move |tx| {
                let mut t = tx.raw().open_table(TABLE).map_err(StoreError::from)?;
                if let Some(old) = old {
                    t.remove(old.as_str()).map_err(StoreError::from)?;
                }
                t.insert(k.as_str(), encode(&s2).as_slice()).map_err(StoreError::from)?;
                Ok(())
            })
            .await?;
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = replaces {
            cache.remove(&old);
        }
        cache.insert(key, s);
        Ok(token)
    }

    pub async fn end(&self, store: &Store, key: &str) -> Result<(), AppError> {
        let k = key.to_string();
        store
            .write(crate::store::Actor::system("sign-out"), move |tx| {
                remove_in(tx, &k)?;
                Ok(())
            })
            .await?;
        self.cache.write().unwrap_or_else(|p| p.into_inner()).remove(key);
        Ok(())
    }

    /// Whether a session with this key exists (expired or not).
    pub fn has(&self, key: &str) -> bool {
        self.cache.read().unwrap_or_else(|p| p.into_inner()).contains_key(key)
    }

    /// Ends every session of a user (deactivation, password change).
    pub fn user_sessions(&self, user_id: u64) -> Vec<String> {
        let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
        cache.iter().filter(|(_, s)| s.user_id == user_id).map(|(k, _)| k.clone()).collect()
    }

    /// Writes `last_seen` back, in the background; losing it costs nothing but idle precision.
    pub fn persist_touch(&self, store: &Store, key: &str) {
        let Some(s) = self.cache.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned() else { return };
        let store = store.clone();
        let key = key.to_string();
        tokio::spawn(async move {
            let _ = store
                .write(crate::store::Actor::system("session"), move |tx| {
                    let mut t = tx.raw().open_table(TABLE).map_err(StoreError::from)?;
                    if t.get(key.as_str()).map_err(StoreError::from)?.is_some() {
                        t.insert(key.as_str(), encode(&s).as_slice()).map_err(StoreError::from)?;
                    }
                    Ok(())
                })
                .await;
        });
    }

    /// Drops expired sessions from disk and memory.
    pub async fn sweep(&self, store: &Store) -> Result<usize, AppError> {
        let now = store.now();
        let expired: Vec<String> = {
            let cache = self.cache.read().unwrap_or_else(|p| p.into_inner());
            cache
                .iter()
                .filter(|(_, s)| now - s.last_seen > self.idle || now - s.created > self.absolute)
                .map(|(k, _)| k.clone())
                .collect()
        };
        let n = expired.len();
        if n > 0 {
            let keys = expired.clone();
            store
                .write(crate::store::Actor::system("session sweep"), move |tx| {
                    for k in &keys {
                        remove_in(tx, k)?;
                    }
                    Ok(())
                })
                .await?;
            let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
            for k in expired {
                cache.remove(&k);
            }
        }
        Ok(n)
    }
}

fn remove_in(tx: &mut Tx<'_, '_>, key: &str) -> Result<(), StoreError> {
    tx.raw().open_table(TABLE)?.remove(key)?;
    Ok(())
}

/// Loads sessions at start-up (and after a restore).
pub struct SessionsListener(pub std::sync::Arc<Sessions>);

impl Listener for SessionsListener {
    fn load(&self, store: &ReadTx) -> Result<(), StoreError> {
        let mut map = HashMap::new();
        match store.raw().open_table(TABLE) {
            Ok(t) => {
                for item in t.iter()? {
                    let (k, v) = item?;
                    map.insert(k.value().to_string(), decode(v.value())?);
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(e.into()),
        }
        *self.0.cache.write().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    fn apply(&self, _changes: &[Change]) {}
}
