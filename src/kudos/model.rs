//! Thanks, the two points ledgers, Slack users and the points settings.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::admin::def::take;
use crate::admin::{AdminRecord, Field, FormCtx, Kind, OnDelete, ResourceDef, Values};
use crate::error::FieldErrors;
use crate::store::codec::Versioned;
use crate::store::{Entity, IndexDef, Value};

/// One thanker thanking one person. A `/thanks` naming three people makes three.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thanks {
    /// Slack user ids.
    pub giver: String,
    pub receiver: String,
    pub giver_name: String,
    pub receiver_name: String,
    pub reason: String,
    pub channel: String,
    pub at: DateTime<Utc>,
    /// "YYYY-MM" in the company's time zone.
    pub month: String,
    /// Calendar day in the company's time zone.
    pub day: NaiveDate,
    /// `trigger_id:receiver`: a retried request stores nothing twice.
    pub key: String,
}

crate::envelope_v1!(Thanks, ThanksRecord);

impl Thanks {
    pub fn giver_day(&self) -> String {
        format!("{}:{}", self.giver, self.day)
    }
}

impl Entity for Thanks {
    const TABLE: &'static str = "kudos.thanks";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef { name: "key", field: "key", unique: true },
        IndexDef { name: "giver_day", field: "giver_day", unique: false },
        // Who received what, and per month, come from the `Received` ledger's indexes: each
        // index costs every thanks a B-tree insert, so the thanks row keeps only the two its
        // rules need (see `store::RETIRED_TABLES` for the two it no longer has).
    ];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("at", Value::Time(self.at)),
            ("giver_name", Value::text(self.giver_name.clone())),
            ("receiver_name", Value::text(self.receiver_name.clone())),
            ("reason", Value::text(self.reason.clone())),
            ("giver", Value::text(self.giver.clone())),
            ("receiver", Value::text(self.receiver.clone())),
            ("channel", Value::text(self.channel.clone())),
            ("month", Value::text(self.month.clone())),
            ("day", Value::Date(self.day)),
            ("key", Value::text(self.key.clone())),
            ("giver_day", Value::text(self.giver_day())),
        ]
    }
}

impl AdminRecord for Thanks {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "thanks",
            module: "Kudos",
            singular: "thanks",
            plural: "thanks",
            fields: vec![
                Field::new("at", "When", Kind::Time).readonly(),
                Field::new("giver_name", "From", Kind::Text).readonly(),
                Field::new("receiver_name", "To", Kind::Text).readonly(),
                Field::new("reason", "Reason", Kind::LongText).required().help("Editable for moderation."),
                Field::new("giver", "From (Slack id)", Kind::Text).readonly(),
                Field::new("receiver", "To (Slack id)", Kind::Text).readonly(),
                Field::new("channel", "Channel", Kind::Text).readonly(),
                Field::new("month", "Month", Kind::Text).readonly(),
                Field::new("day", "Day", Kind::Date).readonly(),
                Field::new("key", "Request key", Kind::Text).readonly(),
                Field::new("giver_day", "Giver and day", Kind::Text).readonly(),
            ],
            list_display: vec!["day", "giver_name", "receiver_name", "reason"],
            search_fields: vec!["giver_name", "receiver_name", "reason", "month"],
            filters: vec!["day"],
            ordering: "-day",
            per_page: 100,
            importable: false,
        }
    }
    fn label(&self) -> String {
        format!("{} → {}: {}", self.giver_name, self.receiver_name, self.reason.chars().take(60).collect::<String>())
    }
    fn from_values(v: &Values, old: Option<&Self>, _ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let Some(old) = old else {
            return Err(FieldErrors::single("", "Thanks are given in Slack with /thanks."));
        };
        let mut errs = FieldErrors::new();
        let reason = take::req_text(v, "reason", &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Thanks { reason, ..old.clone() })
    }
}

/// A ledger line: points for one person from one thanks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Points {
    pub slack_user: String,
    pub points: i64,
    pub thanks: u64,
    pub month: String,
}

macro_rules! ledger {
    ($ty:ident, $env:ident, $table:literal, $slug:literal, $singular:literal, $plural:literal) => {
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct $ty(pub Points);

        #[derive(Serialize, Deserialize)]
        pub enum $env {
            V1(Points),
        }

        impl Versioned for $ty {
            type Envelope = $env;
            fn wrap(&self) -> $env {
                $env::V1(self.0.clone())
            }
            fn unwrap(e: $env) -> Self {
                match e {
                    $env::V1(p) => $ty(p),
                }
            }
        }

        impl Entity for $ty {
            const TABLE: &'static str = $table;
            const INDEXES: &'static [IndexDef] = &[
                IndexDef { name: "slack_user", field: "slack_user", unique: false },
                IndexDef { name: "month", field: "month", unique: false },
            ];
            fn fields(&self) -> Vec<(&'static str, Value)> {
                vec![
                    ("slack_user", Value::text(self.0.slack_user.clone())),
                    ("points", Value::Int(self.0.points)),
                    ("thanks", Value::Ref(self.0.thanks)),
                    ("month", Value::text(self.0.month.clone())),
                ]
            }
        }

        impl AdminRecord for $ty {
            fn def() -> ResourceDef {
                ResourceDef {
                    slug: $slug,
                    module: "Kudos",
                    singular: $singular,
                    plural: $plural,
                    fields: vec![
                        Field::new("slack_user", "Slack user", Kind::Text).readonly(),
                        Field::new("points", "Points", Kind::Int).readonly(),
                        Field::new("thanks", "Thanks", Kind::Ref { target: "thanks", on_delete: OnDelete::Cascade })
                            .readonly(),
                        Field::new("month", "Month", Kind::Text).readonly(),
                    ],
                    list_display: vec!["month", "slack_user", "points", "thanks"],
                    search_fields: vec!["slack_user", "month"],
                    filters: vec![],
                    ordering: "-month",
                    per_page: 100,
                    importable: false,
                }
            }
            fn label(&self) -> String {
                format!("{} points for {} ({})", self.0.points, self.0.slack_user, self.0.month)
            }
            fn from_values(_v: &Values, _old: Option<&Self>, _ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
                Err(FieldErrors::single("", "Ledger lines follow from thanks; they are not edited."))
            }
        }
    };
}

ledger!(Given, GivenRecord, "kudos.points_given", "points-given", "points given", "points given");
ledger!(Received, ReceivedRecord, "kudos.points_received", "points-received", "points received", "points received");

/// A Slack user as Bravely knows them, mapped to an employee when possible.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlackUser {
    pub slack_id: String,
    pub name: String,
    pub email: Option<String>,
    pub employee: Option<u64>,
    pub is_bot: bool,
}

crate::envelope_v1!(SlackUser, SlackUserRecord);

impl Entity for SlackUser {
    const TABLE: &'static str = "kudos.slack_users";
    const INDEXES: &'static [IndexDef] = &[
        IndexDef { name: "slack_id", field: "slack_id", unique: true },
        IndexDef { name: "employee", field: "employee", unique: false },
    ];
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("slack_id", Value::text(self.slack_id.clone())),
            ("name", Value::text(self.name.clone())),
            ("email", Value::opt_text(&self.email)),
            ("employee", Value::opt_ref(self.employee)),
            ("is_bot", Value::Bool(self.is_bot)),
        ]
    }
}

impl AdminRecord for SlackUser {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "slack-users",
            module: "Kudos",
            singular: "Slack user",
            plural: "Slack users",
            fields: vec![
                Field::new("slack_id", "Slack id", Kind::Text).required().help("Like U024BE7LH."),
                Field::new("name", "Slack name", Kind::Text).required(),
                Field::new("email", "Email", Kind::Email),
                Field::new("employee", "Employee", Kind::Ref { target: "employees", on_delete: OnDelete::Clear })
                    .help("Thanks to and from this Slack user count for this employee."),
                Field::new("is_bot", "Bot", Kind::Bool).help("Bots cannot be thanked."),
            ],
            list_display: vec!["name", "slack_id", "email", "employee", "is_bot"],
            search_fields: vec!["name", "slack_id", "email"],
            filters: vec!["employee", "is_bot"],
            ordering: "name",
            per_page: 100,
            importable: true,
        }
    }
    fn label(&self) -> String {
        format!("@{} ({})", self.name, self.slack_id)
    }
    fn from_values(v: &Values, _old: Option<&Self>, _ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::new();
        let slack_id = take::req_text(v, "slack_id", &mut errs).to_uppercase();
        if !slack_id.is_empty() && !super::slack::valid_user_id(&slack_id) {
            errs.add("slack_id", "A Slack user id looks like U024BE7LH.");
        }
        let name = take::req_text(v, "name", &mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(SlackUser {
            slack_id,
            name,
            email: take::text(v, "email"),
            employee: take::reference(v, "employee"),
            is_bot: take::boolean(v, "is_bot"),
        })
    }
    fn clear_ref(&mut self, field: &str, _target: u64) -> bool {
        if field == "employee" {
            self.employee = None;
            true
        } else {
            false
        }
    }
}

/// Runtime settings of the module (one row, id 1), edited in the admin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KudosSettings {
    pub points_for_giving: i64,
    pub points_for_receiving: i64,
    /// Thanks one person may give per day (each person thanked counts once).
    pub daily_cap: i64,
}

impl Default for KudosSettings {
    fn default() -> Self {
        KudosSettings { points_for_giving: 1, points_for_receiving: 3, daily_cap: 10 }
    }
}

crate::envelope_v1!(KudosSettings, KudosSettingsRecord);

impl Entity for KudosSettings {
    const TABLE: &'static str = "kudos.settings";
    fn fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("points_for_giving", Value::Int(self.points_for_giving)),
            ("points_for_receiving", Value::Int(self.points_for_receiving)),
            ("daily_cap", Value::Int(self.daily_cap)),
        ]
    }
}

impl AdminRecord for KudosSettings {
    fn def() -> ResourceDef {
        ResourceDef {
            slug: "kudos-settings",
            module: "Kudos",
            singular: "points setting",
            plural: "points settings",
            fields: vec![
                Field::new("points_for_giving", "Points for giving", Kind::Int).required(),
                Field::new("points_for_receiving", "Points for receiving", Kind::Int).required(),
                Field::new("daily_cap", "Daily giving cap", Kind::Int)
                    .required()
                    .help("How many people one person may thank per day."),
            ],
            list_display: vec!["points_for_giving", "points_for_receiving", "daily_cap"],
            search_fields: vec![],
            filters: vec![],
            ordering: "daily_cap",
            per_page: 10,
            importable: false,
        }
    }
    fn label(&self) -> String {
        format!(
            "{} for giving, {} for receiving, {} a day",
            self.points_for_giving, self.points_for_receiving, self.daily_cap
        )
    }
    fn from_values(v: &Values, _old: Option<&Self>, ctx: &FormCtx<'_, '_, '_>) -> Result<Self, FieldErrors> {
        let mut errs = FieldErrors::new();
        let mut get = |name: &str, min: i64, max: i64| match take::int(v, name) {
            Some(n) if (min..=max).contains(&n) => n,
            Some(_) => {
                errs.add(name, format!("Enter a number from {min} to {max}."));
                0
            }
            None => {
                errs.add(name, "This field is required.");
                0
            }
        };
        let s = KudosSettings {
            points_for_giving: get("points_for_giving", 0, 1000),
            points_for_receiving: get("points_for_receiving", 0, 1000),
            daily_cap: get("daily_cap", 1, 1000),
        };
        if _old.is_none() && ctx.tx.get::<KudosSettings>(1).ok().flatten().is_some() {
            errs.add("", "There is one settings record; change it instead of adding another.");
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(s)
    }
}
