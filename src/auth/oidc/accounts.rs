//! Accounts for organisation sign-ins: link by verified email or create, then sync the
//! mapped groups (and superuser status when `superuser_groups` is set).

use std::collections::BTreeSet;

use crate::App;
use crate::auth::model::count_active_superusers;
use crate::auth::{Group, User};
use crate::config::OidcProvider;
use crate::error::AppResult;
use crate::store::{Actor, AuditAction, Tx};

use super::Identity;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    SignIn { user_id: u64, created: bool },
    Inactive { user_id: u64 },
}

/// Finds or creates the user for `identity` and syncs their groups, in one transaction.
pub async fn provision(app: &App, provider: &OidcProvider, identity: Identity) -> AppResult<Outcome> {
    let p = provider.clone();
    let actor = Actor::system(&format!("sign-in with {}", p.name));
    app.store.write(actor, move |tx| Ok(provision_in(tx, &p, &identity)?)).await
}

fn provision_in(tx: &mut Tx<'_, '_>, p: &OidcProvider, id: &Identity) -> Result<Outcome, crate::store::StoreError> {
    let existing = tx.find_unique::<User>("email", &id.email)?;
    if let Some((user_id, u)) = &existing
        && !u.active
    {
        return Ok(Outcome::Inactive { user_id: *user_id });
    }
    let (user_id, before, created) = match existing {
        Some((user_id, u)) => (user_id, u, false),
        None => {
            let u = User {
                email: id.email.clone(),
                name: id.name.clone(),
                active: true,
                superuser: false,
                password_hash: None,
                groups: vec![],
                permissions: vec![],
                created_at: tx.now(),
                last_login: None,
            };
            let user_id = tx.insert(&u)?;
            tracing::info!(user_id, provider = %p.id, "user created at first organisation sign-in");
            (user_id, u, true)
        }
    };
    let Some(values) = &id.groups else {
        return Ok(Outcome::SignIn { user_id, created });
    };
    let mut after = before.clone();
    sync_groups(tx, p, values, &mut after)?;
    sync_superuser(tx, p, values, user_id, &mut after)?;
    if after != before {
        tx.update_as(user_id, &after, AuditAction::Other(format!("groups synced from {}", p.name)), None)?;
    }
    Ok(Outcome::SignIn { user_id, created })
}

/// Mapped Bravely groups follow the claim; groups the mapping does not name are left alone.
fn sync_groups(
    tx: &Tx<'_, '_>,
    p: &OidcProvider,
    values: &[String],
    user: &mut User,
) -> Result<(), crate::store::StoreError> {
    let mut mapped = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    for (value, group_name) in &p.groups {
        match tx.find_unique::<Group>("name", group_name)? {
            Some((gid, _)) => {
                mapped.insert(gid);
                if values.iter().any(|v| v == value) {
                    wanted.insert(gid);
                }
            }
            None => tracing::warn!(
                provider = %p.id,
                group = %group_name,
                "oidc.providers.groups names a Bravely group that does not exist; create it under Groups"
            ),
        }
    }
    user.groups.retain(|g| !mapped.contains(g) || wanted.contains(g));
    for g in wanted {
        if !user.groups.contains(&g) {
            user.groups.push(g);
        }
    }
    Ok(())
}

/// With `superuser_groups` set, superuser status follows the claim, but the last active
/// superuser keeps it (and the log says so).
fn sync_superuser(
    tx: &Tx<'_, '_>,
    p: &OidcProvider,
    values: &[String],
    user_id: u64,
    user: &mut User,
) -> Result<(), crate::store::StoreError> {
    if p.superuser_groups.is_empty() {
        return Ok(());
    }
    let wanted = values.iter().any(|v| p.superuser_groups.contains(v));
    if wanted == user.superuser {
        return Ok(());
    }
    if !wanted && count_active_superusers(tx)? <= 1 {
        tracing::warn!(user_id, provider = %p.id, "kept superuser status: this is the last active superuser");
        return Ok(());
    }
    user.superuser = wanted;
    Ok(())
}
