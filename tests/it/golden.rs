//! Pins the stored encoding of every stored type: a format change must be a new envelope
//! version, never a silent change of these bytes.

use bravely::auth::{Group, User};
use bravely::inventory::{Assignment, Item, ItemKind};
use bravely::jobs::JobState;
use bravely::kudos::model::Points;
use bravely::kudos::{Given, KudosSettings, Received, SlackUser, Thanks};
use bravely::money::{Currency, Money};
use bravely::people::Employee;
use bravely::store::{AuditAction, AuditEntry, Entity, FieldChange, Value, decode, encode};
use bravely::tokens::ApiToken;
use chrono::{DateTime, NaiveDate, Utc};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid")
}

fn at() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-02T09:30:00Z").expect("valid").with_timezone(&Utc)
}

fn check<T: Entity + PartialEq + std::fmt::Debug>(value: T, golden: &str) {
    let bytes = encode(&value);
    assert_eq!(hex::encode(&bytes), golden, "encoding of {} changed", T::TABLE);
    let back: T = decode(&hex::decode(golden).expect("hex")).expect("golden bytes decode");
    assert_eq!(back, value, "{} round trip", T::TABLE);
}

#[test]
fn stored_types_have_pinned_encodings() {
    let eur = Currency::parse("EUR").expect("valid");
    check(
        User {
            email: "ana@example.com".into(),
            name: "Ana".into(),
            active: true,
            superuser: false,
            password_hash: Some("$argon2id$x".into()),
            groups: vec![1, 2],
            permissions: vec!["items.view".into()],
            created_at: at(),
            last_login: None,
        },
        GOLDEN_USER,
    );
    check(Group { name: "Office".into(), permissions: vec!["items.change".into()] }, GOLDEN_GROUP);
    check(
        Employee {
            name: "Ana Nowak".into(),
            work_email: "ana@example.com".into(),
            title: "Developer".into(),
            team: Some("Web".into()),
            start_date: day(2024, 5, 1),
            end_date: None,
            active: true,
        },
        GOLDEN_EMPLOYEE,
    );
    check(ItemKind { name: "Laptop".into(), tracking: "serialised".into(), low_stock: Some(3) }, GOLDEN_KIND);
    check(
        Item {
            kind: 1,
            name: "ThinkPad".into(),
            serial: Some("PF-1".into()),
            purchase_date: Some(day(2025, 1, 10)),
            cost: Some(Money::new(149_900, eur)),
            warranty_end: None,
            quantity: 1,
            notes: None,
            assignee: Some(7),
            assigned_qty: 0,
        },
        GOLDEN_ITEM,
    );
    check(
        Assignment {
            item: 1,
            employee: 7,
            quantity: 1,
            assigned_on: day(2025, 2, 1),
            returned_on: None,
            note: Some("new".into()),
        },
        GOLDEN_ASSIGNMENT,
    );
    check(
        Thanks {
            giver: "U1ANA".into(),
            receiver: "U2BEN".into(),
            giver_name: "ana".into(),
            receiver_name: "ben".into(),
            reason: "the review".into(),
            channel: "C1".into(),
            at: at(),
            month: "2026-03".into(),
            day: day(2026, 3, 2),
            key: "t1:U2BEN".into(),
        },
        GOLDEN_THANKS,
    );
    let points = Points { slack_user: "U1ANA".into(), points: 3, thanks: 1, month: "2026-03".into() };
    check(Given(points.clone()), GOLDEN_GIVEN);
    check(Received(points), GOLDEN_RECEIVED);
    check(
        SlackUser {
            slack_id: "U1ANA".into(),
            name: "ana".into(),
            email: Some("ana@example.com".into()),
            employee: Some(4),
            is_bot: false,
        },
        GOLDEN_SLACK_USER,
    );
    check(KudosSettings { points_for_giving: 1, points_for_receiving: 3, daily_cap: 10 }, GOLDEN_KUDOS_SETTINGS);
    check(
        ApiToken {
            user_id: 3,
            name: "backups".into(),
            prefix: "bvt_Ab12Cd34".into(),
            secret_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            created_at: at(),
            expires_at: Some(at()),
            last_used_at: None,
            revoked_at: Some(at()),
        },
        GOLDEN_API_TOKEN,
    );
    check(
        JobState {
            key: "backup-database".into(),
            first_seen: at(),
            last_slot: Some(at()),
            last_started: Some(at()),
            last_finished: None,
            last_ok: Some(true),
            last_message: "ok".into(),
            last_duration_ms: 1500,
            last_trigger: "schedule".into(),
            last_success: Some(at()),
            runs: 2,
            failures: 1,
        },
        GOLDEN_JOB_STATE,
    );
    check(
        AuditEntry {
            at: at(),
            actor_id: Some(1),
            actor_label: "Ana".into(),
            table: "people.employees".into(),
            record: 3,
            action: AuditAction::Update,
            changes: vec![FieldChange {
                field: "title".into(),
                old: Value::text("Dev"),
                new: Value::Money(Money::new(5, eur)),
            }],
            note: None,
        },
        GOLDEN_AUDIT,
    );
}

const GOLDEN_USER: &str = "000f616e61406578616d706c652e636f6d03416e610100010b246172676f6e3269642478020102010a6974656d732e7669657714323032362d30332d30325430393a33303a30305a00";
const GOLDEN_GROUP: &str = "00064f6666696365010c6974656d732e6368616e6765";
const GOLDEN_EMPLOYEE: &str =
    "0009416e61204e6f77616b0f616e61406578616d706c652e636f6d09446576656c6f70657201035765620a323032342d30352d30310001";
const GOLDEN_KIND: &str = "00064c6170746f700a73657269616c697365640106";
const GOLDEN_ITEM: &str = "0001085468696e6b506164010450462d31010a323032352d30312d31300198a612455552000200010700";
const GOLDEN_ASSIGNMENT: &str = "000107020a323032352d30322d30310001036e6577";
const GOLDEN_AUDIT: &str = "0014323032362d30332d30325430393a33303a30305a010103416e611070656f706c652e656d706c6f79656573030101057469746c650103446576060a45555200";
const GOLDEN_THANKS: &str = "00055531414e4105553242454e03616e610362656e0a7468652072657669657702433114323032362d30332d30325430393a33303a30305a07323032362d30330a323032362d30332d30320874313a553242454e";
const GOLDEN_GIVEN: &str = "00055531414e41060107323032362d3033";
const GOLDEN_RECEIVED: &str = "00055531414e41060107323032362d3033";
const GOLDEN_SLACK_USER: &str = "00055531414e4103616e61010f616e61406578616d706c652e636f6d010400";
const GOLDEN_KUDOS_SETTINGS: &str = "00020614";
const GOLDEN_JOB_STATE: &str = "000f6261636b75702d646174616261736514323032362d30332d30325430393a33303a30305a0114323032362d30332d30325430393a33303a30305a0114323032362d30332d30325430393a33303a30305a000101026f6bdc0b087363686564756c650114323032362d30332d30325430393a33303a30305a0201";
const GOLDEN_API_TOKEN: &str = "0003076261636b7570730c6276745f4162313243643334403966383664303831383834633764363539613266656161306335356164303135613362663466316232623062383232636431356436633135623066303061303814323032362d30332d30325430393a33303a30305a0114323032362d30332d30325430393a33303a30305a000114323032362d30332d30325430393a33303a30305a";
