//! Personal API tokens: how scripts call `/api/...` as a user.
//!
//! A token belongs to one user and acts with that user's permissions as they are at each
//! request (an inactive or deleted user's tokens stop working). It is shown once when made,
//! on the account page or by `bravely token add`, and only its SHA-256 is stored. The request
//! pipeline (`web::middleware`) authenticates `/api/` requests by `Authorization: Bearer` only;
//! admins see and revoke everyone's tokens under Administration → API tokens.

pub mod handlers;
pub mod model;
pub mod service;

use std::sync::Arc;

pub use model::ApiToken;
pub use service::TokenState;

use crate::admin::{AdminResource, Typed};
use crate::web::{Routes, paths};
use crate::{Module, NavEntry};

pub struct Tokens;

impl Module for Tokens {
    fn stored(&self) -> Vec<crate::store::check::Stored> {
        use crate::store::check::Stored;
        vec![Stored::entity::<ApiToken>()]
    }
    fn name(&self) -> &'static str {
        "API tokens"
    }
    fn resources(&self) -> Vec<Arc<dyn AdminResource>> {
        vec![Typed::<ApiToken>::new()]
    }
    fn routes(&self, r: &mut Routes) {
        handlers::routes(r);
    }
    fn nav(&self) -> Vec<NavEntry> {
        vec![
            NavEntry::new("Account", "API tokens", paths::account_tokens(), None),
            NavEntry::new("Administration", "API tokens", paths::admin_list("api-tokens"), Some("api-tokens.view")),
        ]
    }
    fn help(&self) -> Option<crate::help::Help> {
        Some(crate::help::Help { chapter: "accounts", prefixes: &["/account/"] })
    }
}
