//! Stored values: postcard inside a versioned envelope.
//!
//! postcard, like bincode, does not tolerate an added field by itself, so every stored type is
//! wrapped in an enum (`V1(..)`, `V2(..)`, ...). We always write the newest variant and upgrade
//! older ones on read. A golden-bytes test pins each type's encoding.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;
use super::value::Value;

/// A secondary index on one field. Unique indexes turn clashes into a field error.
#[derive(Debug, Clone, Copy)]
pub struct IndexDef {
    pub name: &'static str,
    pub field: &'static str,
    pub unique: bool,
}

/// A stored type's versioned envelope: write the newest variant, upgrade older ones on read.
/// [`envelope_v1!`](crate::envelope_v1) implements it for a type's first version.
pub trait Versioned: Sized {
    type Envelope: Serialize + DeserializeOwned;
    fn wrap(&self) -> Self::Envelope;
    fn unwrap(envelope: Self::Envelope) -> Self;
}

/// A record type with its own redb table.
pub trait Entity: Versioned + Clone + Send + Sync + 'static {
    /// The redb table name: a fixed literal, never derived from a Rust path.
    const TABLE: &'static str;
    const INDEXES: &'static [IndexDef] = &[];

    /// Every field, in a stable order, as generic values: audit diffs and indexes use these.
    /// Secrets (password hashes, token hashes) are left out.
    fn fields(&self) -> Vec<(&'static str, Value)>;

    /// Digests of secrets that an index must find (an API token's SHA-256), kept out of
    /// [`Entity::fields`] so that audit diffs, lists and forms never see them.
    fn secret_fields(&self) -> Vec<(&'static str, Value)> {
        vec![]
    }

    fn field(&self, name: &str) -> Value {
        self.fields().into_iter().find(|(n, _)| *n == name).map(|(_, v)| v).unwrap_or_default()
    }
}

pub fn encode<T: Entity>(value: &T) -> Vec<u8> {
    // Serializing plain data into a Vec cannot fail.
    postcard::to_stdvec(&value.wrap()).unwrap_or_default()
}

pub fn decode<T: Entity>(bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes::<T::Envelope>(bytes)
        .map(T::unwrap)
        .map_err(|e| StoreError::Decode { table: T::TABLE, reason: e.to_string() })
}

/// Declares `enum $env { V1($ty) }` as the envelope of `$ty` and implements [`Versioned`].
/// When a type changes, replace this with a hand-written envelope and upgrade path.
#[macro_export]
macro_rules! envelope_v1 {
    ($ty:ident, $env:ident) => {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub enum $env {
            V1($ty),
        }
        impl $crate::store::codec::Versioned for $ty {
            type Envelope = $env;
            fn wrap(&self) -> $env {
                $env::V1(self.clone())
            }
            fn unwrap(e: $env) -> Self {
                match e {
                    $env::V1(v) => v,
                }
            }
        }
    };
}
