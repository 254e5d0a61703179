use crate::harness::{TestApp, location};

async fn setup() -> (TestApp, crate::harness::Client) {
    let t = TestApp::spawn().await;
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    for (name, tracking) in [("Laptop", "serialised"), ("Headset", "counted")] {
        let r = c.post("/admin/item-kinds/new", &[("name", name), ("tracking", tracking), ("low_stock", "2")]).await;
        assert_eq!(r.status(), 303);
    }
    for (name, email) in [("Ana Nowak", "ana@example.com"), ("Ben Berg", "ben@example.com")] {
        let r = c
            .post(
                "/admin/employees/new",
                &[
                    ("name", name),
                    ("work_email", email),
                    ("title", "Dev"),
                    ("start_date", "2024-01-01"),
                    ("active", "on"),
                ],
            )
            .await;
        assert_eq!(r.status(), 303);
    }
    let r = c
        .post(
            "/admin/items/new",
            &[
                ("name", "ThinkPad T14"),
                ("serial", "PF-1234"),
                ("kind", "1"),
                ("quantity", "1"),
                ("cost", "1,499.00 EUR"),
                ("purchase_date", "2025-01-10"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let r = c.post("/admin/items/new", &[("name", "Jabra Evolve2"), ("kind", "2"), ("quantity", "5")]).await;
    assert_eq!(r.status(), 303);
    (t, c)
}

#[tokio::test]
async fn assign_and_return_a_laptop_with_history() {
    let (t, c) = setup().await;
    // Through htmx: the answer is the refreshed panel.
    let token = c.csrf().await;
    let r = c
        .http
        .post(format!("{}/inventory/items/1/assign", c.base))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token)
        .form(&[("employee", "1"), ("note", "new starter")])
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 200);
    let panel = r.text().await.unwrap_or_default();
    assert!(panel.contains("id=\"assignment\"") && !panel.contains("<html"));
    assert!(panel.contains("Assigned to <strong class=\"assignee\">Ana Nowak</strong>"));

    // A second assignment is refused with the reason.
    let r = c.post("/inventory/items/1/assign", &[("employee", "2")]).await;
    assert_eq!(r.status(), 303);
    let (_, page) = c.text(&location(&r)).await;
    assert!(page.contains("This item is with Ana Nowak; return it first."));

    let (_, list) = c.text("/admin/items/?assigned=yes").await;
    assert!(list.contains("ThinkPad T14") && list.contains("Ana Nowak"));
    let (_, who) = c.text("/inventory/people/1").await;
    assert!(who.contains("ThinkPad T14 (PF-1234)"));

    let r = c.post("/inventory/assignments/1/return", &[]).await;
    assert_eq!(r.status(), 303);
    let items = t.app.registry.get("items").expect("items").model();
    let free = items
        .all()
        .into_iter()
        .find(|r| r.values[8].is_null() && r.values[9] == bravely::store::Value::Int(0))
        .expect("a free item");
    let (_, item) = c.text(&format!("/admin/items/{}/", free.id)).await;
    assert!(item.contains("Not assigned."));
    let (_, history) = c.text("/admin/items/1/history").await;
    assert!(history.contains("Assigned to Ana Nowak") && history.contains("Returned by Ana Nowak"));
    assert!(history.contains("<ins>Ana Nowak</ins>"), "the assignee diff shows the name");
    let (_, again) = c.text("/admin/items/?assigned=no&q=thinkpad").await;
    assert!(again.contains("ThinkPad T14"));
    let _ = t;
}

#[tokio::test]
async fn counted_stock_is_handed_out_by_quantity_and_flags_low_stock() {
    let (t, c) = setup().await;
    let r = c.post("/inventory/items/2/assign", &[("employee", "1"), ("quantity", "4")]).await;
    assert_eq!(r.status(), 303);
    let r = c.post("/inventory/items/2/assign", &[("employee", "2"), ("quantity", "2")]).await;
    let (_, page) = c.text(&location(&r)).await;
    assert!(page.contains("Only 1 free; cannot hand out 2."));
    let (_, overview) = c.text("/inventory").await;
    let doc = scraper::Html::parse_document(&overview);
    let sel = scraper::Selector::parse("tr.low-stock").expect("selector");
    let low: Vec<String> = doc.select(&sel).map(|r| r.text().collect::<String>()).collect();
    assert_eq!(low.len(), 2, "laptops (1 free of threshold 2) and headsets (1 free): {low:?}");
    assert!(low.iter().any(|r| r.contains("Headset") && r.contains("Low stock")));
    let r = c.post("/admin/items/2/", &[("name", "Jabra Evolve2"), ("kind", "2"), ("quantity", "3")]).await;
    assert_eq!(r.status(), 422, "cannot shrink stock below what is handed out");
    assert!(r.text().await.unwrap_or_default().contains("4 are handed out"));
    let _ = t;
}

#[tokio::test]
async fn typeahead_finds_people_by_name() {
    let t = TestApp::spawn().await;
    t.demo(300, 40).await;
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    let items = t.app.registry.get("items").expect("items").model();
    let free = items
        .all()
        .into_iter()
        .find(|r| r.values[8].is_null() && r.values[9] == bravely::store::Value::Int(0))
        .expect("a free item");
    let (_, item) = c.text(&format!("/admin/items/{}/", free.id)).await;
    assert!(item.contains("class=\"typeahead\""), "a large table gets a typeahead picker");
    let (s, html) = c.text("/admin/employees/lookup?name=employee&employee__search=johans").await;
    assert_eq!(s, 200);
    let doc = scraper::Html::parse_fragment(&html);
    let sel = scraper::Selector::parse("button.typeahead-option").expect("selector");
    let labels: Vec<String> =
        doc.select(&sel).map(|b| b.value().attr("data-label").unwrap_or("").to_string()).collect();
    assert!(!labels.is_empty() && labels.len() <= 10);
    assert!(labels.iter().all(|l| l.to_lowercase().contains("johans")), "{labels:?}");
}
