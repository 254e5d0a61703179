//! Every registered route, tried as anonymous, as a user without permissions, as a user with
//! exactly the permission the route declares, and as a superuser.

use bravely::web::Access;
use poem::http::Method;

use crate::harness::{TestApp, location};

/// Fills path parameters with values that exist.
fn concrete(path: &str, slug: &str) -> String {
    path.replace(":slug", slug)
        .replace(":id", "1")
        .replace(":job", "1")
        .replace(":token", "not-a-token")
        .replace("*path", "app.css")
}

fn perm_for(access: &Access, slug: &str) -> Option<String> {
    match access {
        Access::Perm(p) => Some(p.clone()),
        Access::Resource(a) => Some(format!("{slug}.{a}")),
        _ => None,
    }
}

#[tokio::test]
async fn every_route_enforces_its_declared_access() {
    let t = TestApp::spawn_with(tempfile::tempdir().expect("tempdir"), |c| {
        c.slack.signing_secret = Some(bravely::config::Secret::new("matrix"));
    })
    .await;
    t.demo(5, 10).await;
    t.user("root@example.com", true, &[]).await;
    let nobody_id = t.user("nobody@example.com", false, &[]).await;
    // Token 1 belongs to someone else: `/account/tokens/1/revoke` must not hit the token below.
    let spare = t.user("spare@example.com", false, &[]).await;
    t.token(spare, "spare", None).await;
    let nobody_token = t.token(nobody_id, "matrix", None).await;
    let routes = t.app.route_table();
    assert!(routes.len() > 20, "routes are registered");
    let slugs: Vec<&str> = t.app.registry.resources().map(|r| r.def().slug).collect();
    let anon = t.client();
    let nobody = t.login("nobody@example.com").await;
    let root = t.login("root@example.com").await;
    let mut checked = 0;
    for route in &routes {
        let slug_list: Vec<&str> = if route.path.contains(":slug") { slugs.clone() } else { vec!["-"] };
        for slug in slug_list {
            let path = concrete(&route.path, slug);
            // Logging out would end the session used for the other checks.
            if path == "/logout" {
                continue;
            }
            // The API takes bearer tokens, never sessions.
            if bravely::web::is_api(&path) {
                let send = |c: &crate::harness::Client, token: Option<&str>| {
                    let mut req = c.http.request(route.method.clone(), format!("{}{path}", c.base));
                    if let Some(token) = token {
                        req = req.bearer_auth(token);
                    }
                    async move { req.send().await.expect("request") }
                };
                let a = send(&anon, None).await;
                assert_eq!(a.status(), 401, "{} {path}: no token", route.method);
                assert!(a.headers().contains_key("www-authenticate"), "{} {path}", route.method);
                let n = send(&root, None).await;
                assert_eq!(n.status(), 401, "{} {path}: a superuser's session is no token", route.method);
                let n = send(&anon, Some(&nobody_token)).await;
                match &route.access {
                    Access::Public | Access::SignedIn => assert_ne!(n.status(), 403, "{} {path}", route.method),
                    _ => assert_eq!(n.status(), 403, "{} {path}: no permission means 403", route.method),
                }
                if let Some(perm) = perm_for(&route.access, slug) {
                    let email = format!("{}-{}@example.com", perm.replace('.', "-"), checked);
                    let id = t.user(&email, false, &[perm.as_str()]).await;
                    let token = t.token(id, "matrix", None).await;
                    let h = send(&anon, Some(&token)).await;
                    assert!(
                        ![401, 403].contains(&h.status().as_u16()),
                        "{} {path}: holder of {perm} is let through",
                        route.method
                    );
                }
                // A fresh superuser: the routes before may have deleted user 1 (the admin's delete
                // action is in the table too), and their tokens with them.
                let id = t.user(&format!("root-{checked}@example.com"), true, &[]).await;
                let s = send(&anon, Some(&t.token(id, "matrix", None).await)).await;
                assert!(
                    ![401, 403].contains(&s.status().as_u16()),
                    "{} {path}: superuser's token got {}",
                    route.method,
                    s.status()
                );
                assert!(s.status().as_u16() < 500, "{} {path}: superuser got {}", route.method, s.status());
                checked += 1;
                continue;
            }
            let send = |c: &crate::harness::Client| {
                let path = path.clone();
                let method = route.method.clone();
                let http = c.http.clone();
                let base = c.base.clone();
                async move {
                    let token = {
                        let html = http
                            .get(format!("{base}/login"))
                            .send()
                            .await
                            .expect("get")
                            .text()
                            .await
                            .unwrap_or_default();
                        if html.contains("csrf-token") {
                            crate::harness::csrf_of(&html)
                        } else {
                            let html = http
                                .get(format!("{base}/"))
                                .send()
                                .await
                                .expect("get")
                                .text()
                                .await
                                .unwrap_or_default();
                            crate::harness::csrf_of(&html)
                        }
                    };
                    let req = if method == Method::GET {
                        http.get(format!("{base}{path}"))
                    } else {
                        http.request(method, format!("{base}{path}")).header("X-CSRF-Token", token).form(&[("x", "y")])
                    };
                    req.send().await.expect("request")
                }
            };
            let a = send(&anon).await;
            match &route.access {
                Access::Public => assert_ne!(a.status(), 403, "{} {path} is public", route.method),
                // No token is configured here, so token routes are off (404); never open.
                Access::Bearer { token, .. } => {
                    assert!(token.is_none());
                    assert_eq!(a.status(), 404, "{} {path}: off without a configured token", route.method);
                }
                _ => {
                    assert_eq!(a.status(), 303, "{} {path}: anonymous is sent to sign in", route.method);
                    assert!(location(&a).starts_with("/login"), "{} {path}", route.method);
                }
            }
            let n = send(&nobody).await;
            match &route.access {
                Access::Public | Access::SignedIn => assert_ne!(n.status(), 403, "{} {path}", route.method),
                Access::Bearer { .. } => assert_eq!(n.status(), 404, "{} {path}: a session is no token", route.method),
                _ => assert_eq!(n.status(), 403, "{} {path}: no permission means 403", route.method),
            }
            if let Some(perm) = perm_for(&route.access, slug) {
                let email = format!("{}-{}@example.com", perm.replace('.', "-"), checked);
                t.user(&email, false, &[perm.as_str()]).await;
                let holder = t.login(&email).await;
                let h = send(&holder).await;
                assert_ne!(h.status(), 403, "{} {path}: holder of {perm} is let through", route.method);
                assert!(!location(&h).starts_with("/login"), "{} {path}: holder of {perm} is signed in", route.method);
            }
            let s = send(&root).await;
            if let Access::Bearer { .. } = route.access {
                assert_eq!(
                    s.status(),
                    404,
                    "{} {path}: not even a superuser's session opens a token route",
                    route.method
                );
                checked += 1;
                continue;
            }
            assert_ne!(s.status(), 403, "{} {path}: superuser", route.method);
            assert!(s.status().as_u16() < 500, "{} {path}: superuser got {}", route.method, s.status());
            checked += 1;
        }
    }
    assert!(checked > 80, "checked {checked} route/resource pairs");
}

#[tokio::test]
async fn view_permission_shows_a_read_only_form_and_hides_actions() {
    let t = TestApp::spawn().await;
    t.demo(3, 0).await;
    t.user("viewer@example.com", false, &["employees.view"]).await;
    let c = t.login("viewer@example.com").await;
    let (s, html) = c.text("/admin/employees/1/").await;
    assert_eq!(s, 200);
    assert!(html.contains("readonly-value"), "fields are read-only");
    assert!(!html.contains(">Save<"), "no save button");
    let (_, list) = c.text("/admin/employees/").await;
    assert!(!list.contains("Add employee"));
    assert!(!list.contains("row-select"), "no bulk delete without the delete permission");
    let (_, index) = c.text("/admin/").await;
    assert!(index.contains("Employees") && !index.contains("Item kinds"), "index lists only visible resources");
}

#[tokio::test]
async fn group_permissions_apply_to_members() {
    let t = TestApp::spawn().await;
    t.user("root@example.com", true, &[]).await;
    let member = t.user("member@example.com", false, &[]).await;
    let root = t.login("root@example.com").await;
    let r = root
        .post(
            "/admin/groups/new",
            &[("name", "Office"), ("permissions", "items.view"), ("permissions", "items.change")],
        )
        .await;
    assert_eq!(r.status(), 303);
    let m = t.login("member@example.com").await;
    assert_eq!(m.get("/admin/items/").await.status(), 403);
    let r = root
        .post(
            &format!("/admin/users/{member}/"),
            &[("email", "member@example.com"), ("name", "Member"), ("active", "on"), ("groups", "1")],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    assert_eq!(m.get("/admin/items/").await.status(), 200, "the group's permission now applies");
    assert_eq!(m.get("/admin/employees/").await.status(), 403);
}

#[tokio::test]
async fn the_last_superuser_cannot_be_demoted() {
    let t = TestApp::spawn().await;
    let id = t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    let r = c
        .post(&format!("/admin/users/{id}/"), &[("email", "root@example.com"), ("name", "Root"), ("active", "on")])
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap_or_default().contains("last active superuser"));
}

/// The home page's module cards: each shows only to those who may see its numbers, and the
/// numbers are the stored ones.
#[tokio::test]
async fn home_page_cards_follow_permissions_and_count_what_is_stored() {
    use bravely::inventory::Item;
    use bravely::people::Employee;

    let t = TestApp::spawn().await;
    t.demo_with(bravely::demo::Plan { employees: 25, items: 40, thanks: 30 }).await;
    let (current, in_stock) = {
        let r = t.app.store.read().expect("read");
        let employees = r.all::<Employee>().expect("employees");
        let items = r.all::<Item>().expect("items");
        (employees.iter().filter(|(_, e)| e.active).count(), items.iter().map(|(_, i)| i.quantity).sum::<i64>())
    };
    let card = |html: &str, title: &str| -> Option<String> {
        let at = html.find(&format!(">{title}</a></h3>"))?;
        let rest = &html[at..];
        Some(rest[..rest.find("</div></div>").unwrap_or(rest.len())].to_string())
    };

    t.user("boss@example.com", true, &[]).await;
    let (status, html) = t.login("boss@example.com").await.text("/").await;
    assert_eq!(status, 200);
    let people = card(&html, "People").expect("the superuser sees the People card");
    assert!(people.contains(&format!("<span class=\"stat-value\">{current}</span>")), "{people}");
    let inventory = card(&html, "Inventory").expect("the superuser sees the Inventory card");
    assert!(inventory.contains(&format!("free of {in_stock} items")), "{inventory}");
    let kudos = card(&html, "Kudos").expect("everyone sees the Kudos card");
    assert!(kudos.contains("thanks this month"), "{kudos}");

    t.user("stores@example.com", false, &["items.view"]).await;
    let (_, html) = t.login("stores@example.com").await.text("/").await;
    assert!(card(&html, "Inventory").is_some(), "items.view shows the Inventory card");
    assert!(card(&html, "People").is_none(), "without employees.view, no People card");

    t.user("nobody@example.com", false, &[]).await;
    let (_, html) = t.login("nobody@example.com").await.text("/").await;
    assert!(card(&html, "Inventory").is_none() && card(&html, "People").is_none(), "no numbers without permissions");
    assert!(card(&html, "Kudos").is_some(), "the leaderboard is for everyone signed in");

    // Someone whose account email is an employee's with a Slack user sees their own points.
    let (email, slack_id) = {
        let r = t.app.store.read().expect("read");
        let (_, su) = r
            .all::<bravely::kudos::SlackUser>()
            .expect("slack users")
            .into_iter()
            .find(|(_, u)| u.employee.is_some())
            .expect("a mapped Slack user");
        let e = r.get::<Employee>(su.employee.expect("mapped")).expect("get").expect("employee");
        (e.work_email, su.slack_id)
    };
    let month = bravely::kudos::service::month_of(t.app.store.now(), t.app.tz);
    let [(received, given), _] =
        bravely::kudos::service::my_points(&t.app.store.read().expect("read"), &slack_id, &month).expect("points");
    t.user(&email, false, &[]).await;
    let (_, html) = t.login(&email).await.text("/").await;
    let kudos = card(&html, "Kudos").expect("Kudos card");
    assert!(kudos.contains(&format!("You: {received} points received, {given} given this month.")), "{kudos}");
}
