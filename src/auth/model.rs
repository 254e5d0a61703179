//! Users and groups: admin resources like Django's `auth` app.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::admin::def::take;
use crate::admin::{AdminRecord, Field, FormCtx, Kind, ResourceDef, Values};
use crate::error::FieldErrors;
use crate::store::{Entity, IndexDef, Value};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub email: String,
    pub name: String,
    pub active: bool,
    pub superuser: bool,
    /// argon2id PHC string; `None` for accounts that only sign in through an organisation.
    pub password_hash: Option<String>,
    pub groups: Vec<u64>,
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_login: Option<DateTime<Utc>>,
}

crate::envelope_v1!(User, UserRecord);

impl Entity for User {
    const TABLE: &'static str = "auth.users";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef { name: "email", field: "email", unique: true },
        IndexDef { name: "superuser", field: "superuser", unique: false },
        IndexDef { name: "groups", field: "groups", unique: false },
    ];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("email", Value::text(self.email.clone())),
            ("name", Value::text(self.name.clone())),
            ("active", Value::Bool(self.active)),
            ("superuser", Value::Bool(self.superuser)),
            ("has_password", Value::Bool(self.password_hash.is_some())),
            ("groups", Value::Refs(self.groups.clone())),
            ("permissions", Value::Texts(self.permissions.clone())),
            ("created_at", Value::Time(self.created_at)),
            ("last_login", self.last_login.map(Value::Time).unwrap_or_default()),
        ]
    }
}

pub fn valid_email(s: &str) -> bool {
    let s = s.trim();
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
                && s.matches('@').count() == 1
        }
        None => false,
    }
}

impl AdminRecord for User {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "users",
            module: "Accounts",
            singular: "user",
            plural: "users",
            fields: vec![
                Field::new("email", "Email", Kind::Email).required(),
                Field::new("name", "Name", Kind::Text).required(),
                Field::new("active", "Active", Kind::Bool).help("Inactive users cannot sign in."),
                Field::new("superuser", "Superuser", Kind::Bool)
                    .help("Has every permission without them being granted."),
                Field::new("password", "Password", Kind::Password)
                    .help("At least 10 characters. Leave blank to keep the current password."),
                Field::new("has_password", "Has password", Kind::Bool).readonly(),
                Field::new("groups", "Groups", Kind::Refs { target: "groups" }),
                Field::new("permissions", "Permissions", Kind::Permissions),
                Field::new("created_at", "Created", Kind::Time).readonly(),
                Field::new("last_login", "Last sign-in", Kind::Time).readonly(),
            ],
            list_display: vec!["email", "name", "active", "superuser", "last_login"],
            search_fields: vec!["email", "name"],
            filters: vec!["active", "superuser"],
            ordering: "email",
            per_page: 100,
            importable: false,
        }
    }

    fn label(&self) -> String {
        format!("{} <{}>", self.name, self.email)
    }

    fn from_values(v: &Values, old: Option<&Self>, ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::new();
        let email = take::req_text(v, "email", &mut errs).to_lowercase();
        if !email.is_empty() && !valid_email(&email) {
            errs.add("email", "Enter a valid email address.");
        }
        let name = take::req_text(v, "name", &mut errs);
        let mut password_hash = old.and_then(|o| o.password_hash.clone());
        if let Some(pw) = take::text(v, "password") {
            match super::password::check_strength(&pw, &email) {
                Ok(()) => match super::password::hash(&pw) {
                    Ok(h) => password_hash = Some(h),
                    Err(e) => errs.add("password", e.to_string()),
                },
                Err(m) => errs.add("password", m),
            }
        }
        let active = take::boolean(v, "active");
        let superuser = take::boolean(v, "superuser");
        if let Some(o) = old
            && o.superuser
            && !(superuser && active)
            && let Ok(n) = count_active_superusers(ctx.tx)
            && n <= 1
        {
            errs.add("superuser", "This is the last active superuser; make someone else a superuser first.");
        }
        errs.into_result().map_err(|e| match e {
            crate::error::AppError::Validation(f) => f,
            _ => FieldErrors::new(),
        })?;
        Ok(User {
            email,
            name,
            active,
            superuser,
            password_hash,
            groups: take::refs(v, "groups"),
            permissions: take::texts(v, "permissions"),
            created_at: old.map(|o| o.created_at).unwrap_or_else(|| ctx.tx.now()),
            last_login: old.and_then(|o| o.last_login),
        })
    }

    fn clear_ref(&mut self, field: &str, target: u64) -> bool {
        if field == "groups" {
            self.groups.retain(|g| *g != target);
            true
        } else {
            false
        }
    }
}

pub fn count_active_superusers(tx: &crate::store::Tx<'_, '_>) -> Result<usize, crate::store::StoreError> {
    let ids = tx.find_by::<User>("superuser", &Value::Bool(true))?;
    let mut n = 0;
    for id in ids {
        if tx.get::<User>(id)?.is_some_and(|u| u.active && u.superuser) {
            n += 1;
        }
    }
    Ok(n)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub permissions: Vec<String>,
}

crate::envelope_v1!(Group, GroupRecord);

impl Entity for Group {
    const TABLE: &'static str = "auth.groups";
    const INDEXES: &'static [IndexDef] = &[IndexDef { name: "name", field: "name", unique: true }];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![("name", Value::text(self.name.clone())), ("permissions", Value::Texts(self.permissions.clone()))]
    }
}

impl AdminRecord for Group {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "groups",
            module: "Accounts",
            singular: "group",
            plural: "groups",
            fields: vec![
                Field::new("name", "Name", Kind::Text).required(),
                Field::new("permissions", "Permissions", Kind::Permissions),
            ],
            list_display: vec!["name"],
            search_fields: vec!["name"],
            filters: vec![],
            ordering: "name",
            per_page: 100,
            importable: false,
        }
    }

    fn label(&self) -> String {
        self.name.clone()
    }

    fn from_values(v: &Values, _old: Option<&Self>, _ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::new();
        let name = take::req_text(v, "name", &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Group { name, permissions: take::texts(v, "permissions") })
    }
}
