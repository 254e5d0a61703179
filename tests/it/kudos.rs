//! The Slack /thanks command over HTTP, with signed requests and a local Slack stand-in.

use std::sync::{Arc, Mutex};

use bravely::config::Secret;
use bravely::kudos::{Given, Received, SlackUser, Thanks};
use bravely::store::Entity;
use chrono::{DateTime, Utc};
use poem::web::{Data, Json, Query};
use poem::{EndpointExt, Route, get, handler, post};
use serde_json::{Value as Json_, json};

use crate::harness::TestApp;

const SECRET: &str = "test-signing-secret";

async fn app_with(tweak: impl FnOnce(&mut bravely::config::Config)) -> TestApp {
    TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.slack.signing_secret = Some(Secret::new(SECRET));
        tweak(c);
    })
    .await
}

fn form(user: &str, name: &str, text: &str, trigger: &str, response_url: &str) -> String {
    serde_urlencoded::to_string([
        ("team_id", "T1"),
        ("channel_id", "C1"),
        ("user_id", user),
        ("user_name", name),
        ("command", "/thanks"),
        ("text", text),
        ("response_url", response_url),
        ("trigger_id", trigger),
    ])
    .expect("form")
}

/// Sends a request signed the way Slack signs it, at the app's clock time.
async fn send(t: &TestApp, body: &str, secret: &str, age_secs: i64) -> reqwest::Response {
    let ts = (t.clock.now().timestamp() - age_secs).to_string();
    let sig = bravely::kudos::slack::signature(secret, &ts, body.as_bytes());
    reqwest::Client::new()
        .post(format!("http://{}/slack/commands", t.addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Slack-Request-Timestamp", ts)
        .header("X-Slack-Signature", sig)
        .body(body.to_string())
        .send()
        .await
        .expect("request")
}

async fn thanks(t: &TestApp, user: &str, text: &str, trigger: &str) -> Json_ {
    let r = send(t, &form(user, &user.to_lowercase(), text, trigger, "https://hooks.slack.com/x"), SECRET, 0).await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json reply")
}

fn count<T: Entity>(t: &TestApp) -> usize {
    t.app.store.read().expect("read").count(T::TABLE).expect("count") as usize
}

#[tokio::test]
async fn forged_stale_and_unsigned_requests_are_refused_and_store_nothing() {
    let t = app_with(|_| {}).await;
    let body = form("U1ANA", "ana", "<@U2BEN|ben> for the review", "tr1", "https://hooks.slack.com/x");
    assert_eq!(send(&t, &body, "wrong-secret", 0).await.status(), 401, "forged");
    assert_eq!(send(&t, &body, SECRET, 6 * 60).await.status(), 401, "stale");
    let unsigned = reqwest::Client::new()
        .post(format!("http://{}/slack/commands", t.addr))
        .body(body.clone())
        .send()
        .await
        .expect("req");
    assert_eq!(unsigned.status(), 401, "unsigned");
    assert_eq!(count::<Thanks>(&t), 0);
    assert_eq!(send(&t, &body, SECRET, 0).await.status(), 200, "the same body, signed, is accepted");
    assert_eq!(count::<Thanks>(&t), 1);
}

#[tokio::test]
async fn without_a_signing_secret_the_endpoint_is_unavailable() {
    let t = TestApp::spawn().await;
    let body = form("U1ANA", "ana", "<@U2BEN|ben> for the review", "tr1", "");
    assert_eq!(send(&t, &body, SECRET, 0).await.status(), 503);
    assert_eq!(count::<Thanks>(&t), 0);
}

#[tokio::test]
async fn thanking_two_people_gives_points_to_everyone_once() {
    let t = app_with(|_| {}).await;
    let r = thanks(&t, "U1ANA", "<@U2BEN|ben> <@U3CY|cy> for shipping the release", "trig-1").await;
    assert_eq!(r["response_type"], "in_channel");
    assert_eq!(r["text"], ":tada: <@U1ANA> thanked <@U2BEN> and <@U3CY> for shipping the release");
    assert_eq!(count::<Thanks>(&t), 2);
    // Slack retries with the same trigger id: answered the same, stored once.
    let again = thanks(&t, "U1ANA", "<@U2BEN|ben> <@U3CY|cy> for shipping the release", "trig-1").await;
    assert_eq!(again["text"], r["text"]);
    assert_eq!(count::<Thanks>(&t), 2);
    assert_eq!((count::<Given>(&t), count::<Received>(&t)), (2, 2));

    let me = thanks(&t, "U1ANA", "me", "trig-2").await;
    assert_eq!(me["response_type"], "ephemeral");
    assert!(me["text"].as_str().unwrap_or("").contains("received 0 and gave 2 points"), "{me}");
    let board = thanks(&t, "U9ZED", "leaderboard", "trig-3").await;
    let text = board["text"].as_str().unwrap_or("");
    assert!(text.contains("1. <@U2BEN> — 3") && text.contains("1. <@U1ANA> — 2"), "{text}");
}

/// A signed request without `trigger_id`, captured and sent again within Slack's five minutes.
#[tokio::test]
async fn replays_of_a_signed_request_without_a_trigger_id_store_one_thanks() {
    let t = app_with(|_| {}).await;
    let body = serde_urlencoded::to_string([
        ("team_id", "T1"),
        ("channel_id", "C1"),
        ("user_id", "U1ANA"),
        ("user_name", "ana"),
        ("command", "/thanks"),
        ("text", "<@U2BEN|ben> <@U3CY|cy> for the on-call night"),
        ("response_url", "https://hooks.slack.com/x"),
    ])
    .expect("form");
    let ts = t.clock.now().timestamp().to_string();
    let sig = bravely::kudos::slack::signature(SECRET, &ts, body.as_bytes());
    let replay = |ts: String, sig: String| {
        let (body, addr) = (body.clone(), t.addr);
        async move {
            reqwest::Client::new()
                .post(format!("http://{addr}/slack/commands"))
                .header("content-type", "application/x-www-form-urlencoded")
                .header("X-Slack-Request-Timestamp", ts)
                .header("X-Slack-Signature", sig)
                .body(body)
                .send()
                .await
                .expect("request")
        }
    };
    let first: Json_ = replay(ts.clone(), sig.clone()).await.json().await.expect("json");
    assert_eq!(first["text"], ":tada: <@U1ANA> thanked <@U2BEN> and <@U3CY> for the on-call night");
    for i in 0..4 {
        // Later within the window, and with the headers padded as a proxy might.
        t.clock.advance(chrono::Duration::seconds(30));
        let (ts, sig) = if i % 2 == 0 { (ts.clone(), sig.clone()) } else { (format!(" {ts}"), format!("{sig} ")) };
        let r = replay(ts, sig).await;
        assert_eq!(r.status(), 200);
        let again: Json_ = r.json().await.expect("json");
        assert_eq!(again["text"], first["text"], "a replay is answered as the original");
    }
    assert_eq!(count::<Thanks>(&t), 2, "one thanks per person, however often the request is replayed");
    assert_eq!((count::<Given>(&t), count::<Received>(&t)), (2, 2));

    // The same text sent again for real (a new timestamp, so a new signature) is a new thanks.
    let ts2 = t.clock.now().timestamp().to_string();
    let sig2 = bravely::kudos::slack::signature(SECRET, &ts2, body.as_bytes());
    assert_eq!(replay(ts2, sig2).await.status(), 200);
    assert_eq!(count::<Thanks>(&t), 4);
}

#[tokio::test]
async fn rules_self_bots_reasons_and_the_daily_cap() {
    let t = app_with(|_| {}).await;
    let r = thanks(&t, "U1ANA", "<@U1ANA|ana> for being me", "a").await;
    assert_eq!(r["response_type"], "ephemeral");
    assert!(r["text"].as_str().unwrap_or("").contains("can’t thank yourself"));
    let r = thanks(&t, "U1ANA", "<@B0BOT|deploybot> for deploying", "b").await;
    assert!(r["text"].as_str().unwrap_or("").contains("is a bot"));
    let r = thanks(&t, "U1ANA", "<@U2BEN|ben>", "c").await;
    assert!(r["text"].as_str().unwrap_or("").contains("Add a reason"));
    let r = thanks(&t, "U1ANA", "thanks everyone", "d").await;
    assert!(r["text"].as_str().unwrap_or("").contains("Mention the people"));
    assert_eq!(count::<Thanks>(&t), 0, "nothing stored for refused thanks");

    // The default cap is 10 a day.
    for i in 0..10 {
        let r = thanks(&t, "U1ANA", &format!("<@U2BEN|ben> for help #{i}"), &format!("cap-{i}")).await;
        assert_eq!(r["response_type"], "in_channel", "{r}");
    }
    let r = thanks(&t, "U1ANA", "<@U2BEN|ben> for one more", "cap-10").await;
    assert_eq!(r["response_type"], "ephemeral");
    assert!(r["text"].as_str().unwrap_or("").contains("all 10 thanks for today"), "{r}");
    t.clock.advance(chrono::Duration::days(1));
    let r = thanks(&t, "U1ANA", "<@U2BEN|ben> for a new day", "cap-11").await;
    assert_eq!(r["response_type"], "in_channel");
}

#[tokio::test]
async fn malformed_bodies_get_the_help_message() {
    let t = app_with(|_| {}).await;
    let r = send(&t, "text=%ZZ&&=", SECRET, 0).await;
    assert_eq!(r.status(), 200);
    let v: Json_ = r.json().await.expect("json");
    assert_eq!(v["response_type"], "ephemeral");
    assert!(v["text"].as_str().unwrap_or("").contains("/thanks"), "{v}");
    let help = thanks(&t, "U1ANA", "help", "h").await;
    assert!(help["text"].as_str().unwrap_or("").contains("/thanks leaderboard"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_thanks_are_counted_exactly() {
    let t = Arc::new(app_with(|_| {}).await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            // 20 givers thank the same person 3 times each, all at once.
            let giver = format!("U{:04}", i % 20);
            let r = thanks(&t, &giver, "<@U2BEN|ben> for the fix", &format!("con-{i}")).await;
            assert_eq!(r["response_type"], "in_channel", "{r}");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(count::<Thanks>(&t), 60);
    let me = thanks(&t, "U2BEN", "me", "me").await;
    assert!(me["text"].as_str().unwrap_or("").contains("received 180"), "{me}");
}

#[tokio::test]
async fn months_follow_the_company_time_zone() {
    let t = app_with(|c| c.time_zone = "Europe/Warsaw".into()).await;
    // 22:30 UTC on 31 March is 00:30 on 1 April in Warsaw.
    t.clock.set(DateTime::parse_from_rfc3339("2026-03-31T22:30:00Z").expect("valid").with_timezone(&Utc));
    thanks(&t, "U1ANA", "<@U2BEN|ben> for the late fix", "tz-1").await;
    let r = t.app.store.read().expect("read");
    let (_, row) = r.all::<Thanks>().expect("rows").pop().expect("one");
    assert_eq!(row.month, "2026-04");
    assert_eq!(row.day.to_string(), "2026-04-01");
}

#[derive(Default)]
struct Recorded {
    lookups: Vec<String>,
    replies: Vec<Json_>,
    posts: Vec<(String, Json_)>,
}

#[handler]
fn post_message(req: &poem::Request, Json(body): Json<Json_>, rec: Data<&Arc<Mutex<Recorded>>>) -> Json<Json_> {
    let auth = req.header("authorization").unwrap_or("").to_string();
    rec.lock().expect("lock").posts.push((auth, body.clone()));
    Json(if body["channel"] == "C0GONE" {
        json!({"ok": false, "error": "channel_not_found"})
    } else {
        json!({"ok": true})
    })
}

#[handler]
fn users_info(Query(q): Query<Vec<(String, String)>>, rec: Data<&Arc<Mutex<Recorded>>>) -> Json<Json_> {
    let user = q.iter().find(|(k, _)| k == "user").map(|(_, v)| v.clone()).unwrap_or_default();
    rec.lock().expect("lock").lookups.push(user.clone());
    Json(match user.as_str() {
        "U2BEN" => {
            json!({"ok": true, "user": {"id": "U2BEN", "name": "ben", "is_bot": false, "profile": {"email": "Ben@Example.com"}}})
        }
        "U7ROBO" => json!({"ok": true, "user": {"id": "U7ROBO", "name": "robo", "is_bot": true, "profile": {}}}),
        _ => json!({"ok": true, "user": {"id": user, "name": "someone", "is_bot": false, "profile": {}}}),
    })
}

#[handler]
fn hook(Json(body): Json<Json_>, rec: Data<&Arc<Mutex<Recorded>>>) -> &'static str {
    rec.lock().expect("lock").replies.push(body);
    "ok"
}

async fn slack_stand_in() -> (String, Arc<Mutex<Recorded>>) {
    let rec = Arc::new(Mutex::new(Recorded::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let acceptor = poem::listener::TcpAcceptor::from_std(listener).expect("acceptor");
    let app = Route::new()
        .at("/api/users.info", get(users_info))
        .at("/api/chat.postMessage", post(post_message))
        .at("/hook", post(hook))
        .data(rec.clone());
    tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
    });
    (format!("http://{addr}"), rec)
}

#[tokio::test]
async fn unknown_people_are_looked_up_in_slack_and_mapped_to_employees() {
    let (base, rec) = slack_stand_in().await;
    let b2 = base.clone();
    let t = app_with(move |c| {
        c.slack.bot_token = Some(Secret::new("xoxb-test"));
        c.slack.api_base = format!("{b2}/api");
        c.slack.response_url_prefix = b2.clone();
    })
    .await;
    t.user("root@example.com", true, &[]).await;
    let root = t.login("root@example.com").await;
    let r = root
        .post(
            "/admin/employees/new",
            &[
                ("name", "Ben Berg"),
                ("work_email", "ben@example.com"),
                ("title", "Dev"),
                ("start_date", "2024-01-01"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);

    let hook_url = format!("{base}/hook");
    let body = form("U1ANA", "ana", "<@U2BEN|ben> for the review", "look-1", &hook_url);
    let r = send(&t, &body, SECRET, 0).await;
    let v: Json_ = r.json().await.expect("json");
    assert_eq!(v["response_type"], "ephemeral", "answered at once: {v}");
    let mut waited = 0;
    while rec.lock().expect("lock").replies.is_empty() && waited < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    {
        let rec = rec.lock().expect("lock");
        assert_eq!(rec.replies.len(), 1, "the result went to the response_url");
        assert_eq!(rec.replies[0]["response_type"], "in_channel");
        assert!(rec.lookups.contains(&"U2BEN".to_string()) && rec.lookups.contains(&"U1ANA".to_string()));
    }
    let r = t.app.store.read().expect("read");
    let (_, ben) = r.find_unique::<SlackUser>("slack_id", "U2BEN").expect("read").expect("recorded");
    assert_eq!(ben.employee, Some(1), "matched on email");

    // The employee's page shows the thanks; the leaderboard shows the employee's name.
    let (_, page) = root.text("/admin/employees/1/").await;
    assert!(page.contains("Thanks received") && page.contains("for the review"));
    let (_, board) = root.text("/kudos").await;
    assert!(board.contains("Ben Berg"), "mapped name on the leaderboard");

    // A bot found through the lookup cannot be thanked.
    let body = form("U1ANA", "ana", "<@U7ROBO|robo> for the deploys", "look-2", &hook_url);
    send(&t, &body, SECRET, 0).await;
    let mut waited = 0;
    while rec.lock().expect("lock").replies.len() < 2 && waited < 200 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    let rec = rec.lock().expect("lock");
    assert!(rec.replies[1]["text"].as_str().unwrap_or("").contains("is a bot"), "{}", rec.replies[1]);
    assert_eq!(count::<Thanks>(&t), 1);
}

#[tokio::test]
async fn thanks_to_unmapped_people_attach_when_the_mapping_appears() {
    let t = app_with(|_| {}).await;
    t.user("root@example.com", true, &[]).await;
    let root = t.login("root@example.com").await;
    thanks(&t, "U1ANA", "<@U5DEE|dee> for the onboarding docs", "m-1").await;
    let r = root
        .post(
            "/admin/employees/new",
            &[
                ("name", "Dee Dunn"),
                ("work_email", "dee@example.com"),
                ("title", "Dev"),
                ("start_date", "2024-01-01"),
                ("active", "on"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let (_, before) = root.text("/admin/employees/1/").await;
    assert!(!before.contains("onboarding docs"));
    let sid = t
        .app
        .store
        .read()
        .expect("read")
        .find_unique::<SlackUser>("slack_id", "U5DEE")
        .expect("read")
        .expect("known")
        .0;
    let r = root
        .post(&format!("/admin/slack-users/{sid}/"), &[("slack_id", "U5DEE"), ("name", "dee"), ("employee", "1")])
        .await;
    assert_eq!(r.status(), 303);
    let (_, after) = root.text("/admin/employees/1/").await;
    assert!(after.contains("onboarding docs"), "the earlier thanks now shows on the profile");
    let (_, history) = root.text(&format!("/admin/slack-users/{sid}/history")).await;
    assert!(history.contains("<ins>Dee Dunn</ins>"), "the mapping change is in the history");
}

#[tokio::test]
async fn the_past_months_leaderboard_is_posted_on_the_first() {
    let (base, rec) = slack_stand_in().await;
    let b2 = base.clone();
    let t = app_with(move |c| {
        c.slack.bot_token = Some(Secret::new("xoxb-test"));
        c.slack.api_base = format!("{b2}/api");
        c.slack.leaderboard_channel = Some("C0TEAM".into());
        c.time_zone = "Europe/Warsaw".into();
    })
    .await;
    // March thanks; the harness clock starts on 2 March 2026.
    thanks(&t, "U1ANA", "<@U2BEN|ben> for the release", "m-1").await;
    thanks(&t, "U3CAT", "<@U2BEN|ben> for the review", "m-2").await;
    // New people are looked up in Slack first; the thanks are stored after that.
    for _ in 0..250 {
        if count::<Thanks>(&t) == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(count::<Thanks>(&t), 2);
    t.app.scheduler.tick(&t.app).await;
    assert!(t.app.scheduler.job("kudos-monthly-post").is_some());
    // 1 April 09:00 in Warsaw is 07:00 UTC.
    t.clock.set(DateTime::parse_from_rfc3339("2026-04-01T07:00:00Z").expect("valid").with_timezone(&Utc));
    // An April thanks that must not count in March's board.
    thanks(&t, "U1ANA", "<@U3CAT|cat> for April", "a-1").await;
    let handles = t.app.scheduler.tick(&t.app).await;
    assert!(!handles.is_empty(), "due on the 1st");
    for h in handles {
        h.await.expect("task");
    }
    let posts = rec.lock().expect("lock").posts.clone();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let (auth, body) = &posts[0];
    assert_eq!(auth, "Bearer xoxb-test");
    assert_eq!(body["channel"], "C0TEAM");
    let text = body["text"].as_str().expect("text");
    assert!(text.contains("2026-03"), "{text}");
    let (received, _given) = text.split_once("Most thankful").expect("two boards");
    assert!(received.contains("<@U2BEN>"), "{text}");
    assert!(!received.contains("<@U3CAT>"), "April's thanks are not in March's board: {text}");
    let state = t.app.scheduler.states(&t.app).remove("kudos-monthly-post").expect("state");
    assert_eq!(state.last_ok, Some(true), "{}", state.last_message);
}

#[tokio::test]
async fn a_refused_leaderboard_post_is_a_failed_run() {
    let (base, _rec) = slack_stand_in().await;
    let b2 = base.clone();
    let t = app_with(move |c| {
        c.slack.bot_token = Some(Secret::new("xoxb-test"));
        c.slack.api_base = format!("{b2}/api");
        c.slack.leaderboard_channel = Some("C0GONE".into());
    })
    .await;
    let h = t.app.scheduler.run_now(&t.app, "kudos-monthly-post", "test").await.expect("starts");
    h.await.expect("task");
    let state = t.app.scheduler.states(&t.app).remove("kudos-monthly-post").expect("state");
    assert_eq!(state.last_ok, Some(false));
    assert!(state.last_message.contains("channel_not_found"), "{}", state.last_message);
}

#[tokio::test]
async fn demo_thanks_follow_the_rules_and_fill_the_boards() {
    use chrono::{Datelike, Weekday};
    use std::collections::{BTreeSet, HashMap};

    let t = app_with(|c| c.time_zone = "Europe/Warsaw".into()).await;
    let filled = t.demo_with(bravely::demo::Plan { employees: 30, items: 0, thanks: 90 }).await;
    assert_eq!(filled.thanks, 90, "every planned /thanks passes the rules");

    let today = t.app.today();
    let r = t.app.store.read().expect("read");
    let rows = r.all::<Thanks>().expect("thanks");
    assert!(rows.len() >= 90, "a /thanks makes one row per person thanked: {}", rows.len());
    assert_eq!(count::<Given>(&t), rows.len(), "one given-ledger entry per row");
    assert_eq!(count::<Received>(&t), rows.len(), "one received-ledger entry per row");

    let mut commands_per_giver_day: HashMap<(String, chrono::NaiveDate), BTreeSet<String>> = HashMap::new();
    let mut months = BTreeSet::new();
    for (_, th) in &rows {
        assert_ne!(th.giver, th.receiver, "nobody thanks themselves");
        assert!(
            th.day < today && th.day >= today - chrono::Duration::days(120),
            "{} within the last four months",
            th.day
        );
        assert!(!matches!(th.day.weekday(), Weekday::Sat | Weekday::Sun), "{} is a working day", th.day);
        let local = th.at.with_timezone(&t.app.tz);
        assert_eq!(local.date_naive(), th.day, "the day is the company's (Warsaw) day");
        assert_eq!(th.month, format!("{:04}-{:02}", local.year(), local.month()));
        assert!(!th.reason.is_empty());
        let command = th.key.split(':').next().expect("key").to_string();
        commands_per_giver_day.entry((th.giver.clone(), th.day)).or_default().insert(command);
        months.insert(th.month.clone());
    }
    assert!(commands_per_giver_day.values().all(|c| c.len() <= 2), "at most two /thanks a day per person");
    assert!(months.len() >= 4, "the history spans the months: {months:?}");

    // Employees' Slack users are matched to them by email; guests are kept unmapped.
    let users = r.all::<SlackUser>().expect("users");
    let employees: HashMap<u64, bravely::people::Employee> = r.all().expect("employees").into_iter().collect();
    let (mapped, guests): (Vec<_>, Vec<_>) = users.iter().map(|(_, u)| u).partition(|u| u.employee.is_some());
    assert!(!guests.is_empty() && guests.iter().all(|u| u.email.is_none()), "guests have no employee");
    for u in &mapped {
        let e = &employees[&u.employee.expect("mapped")];
        assert_eq!(u.email.as_deref(), Some(e.work_email.as_str()), "{} is matched by email", u.slack_id);
        assert!(e.active, "only active employees are on Slack");
    }
    assert!(rows.iter().all(|(_, th)| mapped.iter().any(|u| u.slack_id == th.giver)), "givers are employees");

    // The leaderboard of the newest month names its most thanked employee.
    let month = months.iter().next_back().expect("a month").clone();
    let board = bravely::kudos::service::received_board(&r, &month).expect("board");
    let top = board
        .iter()
        .find_map(|(id, _)| mapped.iter().find(|u| &u.slack_id == id).and_then(|u| u.employee))
        .expect("an employee received thanks that month");
    let name = employees[&top].name.clone();
    drop(r);
    t.user("boss@example.com", true, &[]).await;
    let c = t.login("boss@example.com").await;
    let (status, html) = c.text(&format!("/kudos?month={month}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(&maud_escape(&name)), "the board names {name}");
}

fn maud_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
