use crate::harness::{TestApp, location, table_rows};

async fn root(t: &TestApp) -> crate::harness::Client {
    t.user("root@example.com", true, &[]).await;
    t.login("root@example.com").await
}

fn employee<'a>(name: &'a str, email: &'a str, title: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("name", name), ("work_email", email), ("title", title), ("start_date", "2024-05-01"), ("active", "on")]
}

#[tokio::test]
async fn create_edit_delete_with_field_level_history() {
    let t = TestApp::spawn().await;
    let c = root(&t).await;
    let r = c.post("/admin/employees/new", &employee("Ana Nowak", "ana@example.com", "Developer")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/admin/employees/");
    let (_, list) = c.text("/admin/employees/").await;
    assert!(list.contains("The employee “Ana Nowak” was added."), "flash shown");
    let rows = table_rows(&list);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].iter().any(|c| c == "Ana Nowak"));

    t.clock.advance(chrono::Duration::hours(1));
    let r = c.post("/admin/employees/1/", &employee("Ana Nowak", "ana@example.com", "Senior Developer")).await;
    assert_eq!(r.status(), 303);
    let (_, history) = c.text("/admin/employees/1/history").await;
    assert!(history.contains("Changed") && history.contains("Created"));
    assert!(history.contains("<del>Developer</del>"), "old value shown");
    assert!(history.contains("<ins>Senior Developer</ins>"), "new value shown");
    assert!(history.contains("User root@example.com"), "who");
    assert!(history.contains("2026-03-02 10:00:00 UTC"), "when, from the injected clock");

    let (s, confirm) = c.text("/admin/employees/1/delete").await;
    assert_eq!(s, 200);
    assert!(confirm.contains("Are you sure"));
    let r = c.post("/admin/employees/1/delete", &[("confirm", "yes")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(c.get("/admin/employees/1/").await.status(), 404);
    let (s, history) = c.text("/admin/employees/1/history").await;
    assert_eq!(s, 200, "history outlives the record");
    assert!(history.contains("Deleted"));
}

#[tokio::test]
async fn validation_and_unique_clashes_are_field_errors() {
    let t = TestApp::spawn().await;
    let c = root(&t).await;
    assert_eq!(c.post("/admin/employees/new", &employee("Ana", "ana@example.com", "Dev")).await.status(), 303);
    let r = c.post("/admin/employees/new", &employee("Ana Two", "ANA@example.com", "Dev")).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap_or_default();
    assert!(html.contains("field has-error"), "the field is marked");
    assert!(html.contains("already used by another record"));
    assert!(html.contains("value=\"Ana Two\""), "what was typed is kept");

    let r = c
        .post(
            "/admin/employees/new",
            &[("name", ""), ("work_email", "not-an-email"), ("title", "Dev"), ("start_date", "2024-13-45")],
        )
        .await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap_or_default();
    assert!(html.contains("This field is required."));
    assert!(html.contains("Enter a valid email address."));
    assert!(html.contains("Enter a date as YYYY-MM-DD"));
    let r = c
        .post(
            "/admin/employees/new",
            &[
                ("name", "Bo"),
                ("work_email", "bo@example.com"),
                ("title", "Dev"),
                ("start_date", "2024-05-01"),
                ("end_date", "2024-01-01"),
            ],
        )
        .await;
    assert!(r.text().await.unwrap_or_default().contains("cannot be before the start date"));
    assert_eq!(t.app.registry.get("employees").map(|r| r.model().len()), Some(1), "nothing invalid was stored");
}

#[tokio::test]
async fn search_filters_sorting_and_pagination() {
    let t = TestApp::spawn().await;
    t.demo(250, 0).await;
    let c = root(&t).await;
    let model = t.app.registry.get("employees").expect("resource").model();
    let (_, html) = c.text("/admin/employees/").await;
    assert_eq!(table_rows(&html).len(), 100, "first page of 100");
    assert!(html.contains("1–100 of 250"));
    let (_, p3) = c.text("/admin/employees/?page=3").await;
    assert_eq!(table_rows(&p3).len(), 50);

    // Search agrees with a plain scan of the stored names and emails.
    let all = model.all();
    let expected =
        all.iter().filter(|r| r.values.iter().take(4).any(|v| v.plain().to_lowercase().contains("johansson"))).count();
    assert!(expected > 0);
    let (_, found) = c.text("/admin/employees/?q=Johansson").await;
    let rows = table_rows(&found);
    assert_eq!(rows.len(), expected.min(100));
    assert!(rows.iter().all(|r| r.iter().any(|c| c.to_lowercase().contains("johansson"))));

    let active = all.iter().filter(|r| r.values[6] == bravely::store::Value::Bool(false)).count();
    let (_, gone) = c.text("/admin/employees/?active=no").await;
    assert_eq!(table_rows(&gone).len(), active.min(100));
    assert!(gone.contains(&format!("of {active}")));

    let (_, by_date) = c.text("/admin/employees/?start_date__from=2026-01-01&o=-start_date").await;
    let dates: Vec<String> = table_rows(&by_date).iter().map(|r| r[5].clone()).collect();
    assert!(dates.iter().all(|d| d.as_str() >= "2026-01-01"), "{dates:?}");
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "sorted newest first");

    let (s, _) = c.text("/admin/employees/?start_date__from=yesterday").await;
    assert_eq!(s, 400, "a malformed filter is a clear error");
}

#[tokio::test]
async fn csv_export_is_exactly_the_filtered_view() {
    let t = TestApp::spawn().await;
    t.demo(120, 0).await;
    let c = root(&t).await;
    let (_, html) = c.text("/admin/employees/?q=son&active=yes&o=name").await;
    let page_names: Vec<String> = table_rows(&html).iter().map(|r| r[1].clone()).collect();
    let r = c.get("/admin/employees/export.csv?q=son&active=yes&o=name").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or("").contains("employees.csv")
    );
    let body = r.text().await.unwrap_or_default();
    let mut rdr = csv::Reader::from_reader(body.as_bytes());
    let headers = rdr.headers().expect("header").clone();
    assert_eq!(&headers[0], "id");
    let names: Vec<String> = rdr.records().map(|r| r.expect("row")[1].to_string()).collect();
    assert_eq!(names, page_names, "same rows, same order");
}

#[tokio::test]
async fn csv_import_previews_then_applies_all_or_nothing() {
    let t = TestApp::spawn().await;
    let c = root(&t).await;
    assert_eq!(
        c.post("/admin/employees/new", &employee("Ana Nowak", "ana@example.com", "Developer")).await.status(),
        303
    );
    let upload = |csv: &'static str| {
        let c = &c;
        async move {
            let token = c.csrf().await;
            let form = reqwest::multipart::Form::new()
                .text("csrf_token", token)
                .part("file", reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("people.csv"));
            c.http.post(format!("{}/admin/employees/import", c.base)).multipart(form).send().await.expect("upload")
        }
    };
    let wait_for = |path: String, marker: &'static str| {
        let c = &c;
        async move {
            for _ in 0..200 {
                let (_, html) = c.text(&path).await;
                if html.contains(marker) {
                    return html;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("{marker} never appeared at {path}");
        }
    };

    // A file with a bad row: the preview says which, and confirming is not offered.
    let bad = "id,name,work_email,title,start_date\n1,Ana Nowak,ana@example.com,Lead,2024-05-01\n,Bo Berg,bo@example.com,QA,2024-13-01\n";
    let r = upload(bad).await;
    assert_eq!(r.status(), 303);
    let job = location(&r);
    let html = wait_for(job.clone(), "with errors").await;
    assert!(html.contains("row-error") && html.contains("Enter a date as YYYY-MM-DD"));
    assert!(!html.contains("Confirm import"));
    let r = c.post(&job, &[]).await;
    assert_eq!(location(&r), job, "cannot confirm a file with errors");
    assert_eq!(t.app.registry.get("employees").map(|r| r.model().len()), Some(1));

    // A good file: one change, one unchanged, one new.
    let good = "id,name,work_email,title,start_date,active\n1,Ana Nowak,ana@example.com,Lead,2024-05-01,yes\n,Bo Berg,bo@example.com,QA,2024-03-01,yes\n";
    let r = upload(good).await;
    let job = location(&r);
    let html = wait_for(job.clone(), "Confirm import").await;
    assert!(html.contains("row-changed") && html.contains("row-new"));
    assert_eq!(t.app.registry.get("employees").map(|r| r.model().len()), Some(1), "the preview changes nothing");
    let r = c.post(&job, &[]).await;
    assert_eq!(r.status(), 303);
    let html = wait_for(job.clone(), "Imported:").await;
    assert!(html.contains("1 new, 1 changed"));
    let (_, list) = c.text("/admin/employees/?q=Lead").await;
    assert_eq!(table_rows(&list).len(), 1);

    // Unknown columns are refused with the list of expected ones.
    let r = upload("nom,courriel\nA,B\n").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap_or_default().contains("Unknown column(s): nom, courriel"));
}

#[tokio::test]
async fn bulk_delete_asks_first_and_lists_what_is_affected() {
    let t = TestApp::spawn().await;
    t.demo(10, 30).await;
    let c = root(&t).await;
    // Kinds are protected while items use them.
    let r = c.post("/admin/item-kinds/bulk", &[("action", "delete"), ("ids", "1")]).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap_or_default();
    assert!(html.contains("cannot be deleted"), "protected by items");
    let r = c.post("/admin/item-kinds/bulk", &[("action", "delete"), ("ids", "1"), ("confirm", "yes")]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(t.app.registry.get("item-kinds").map(|r| r.model().len()), Some(7), "nothing deleted");
    // Items go, and their assignment history with them (listed on the confirmation page).
    let items = t.app.registry.get("items").expect("items").model();
    let assigned = items.all().into_iter().find(|r| r.values[8].as_ref_id().is_some()).expect("an assigned item");
    let id = assigned.id.to_string();
    let r = c.post("/admin/items/bulk", &[("action", "delete"), ("ids", &id)]).await;
    let html = r.text().await.unwrap_or_default();
    assert!(html.contains("will be deleted"), "assignments listed as affected");
    let r = c.post("/admin/items/bulk", &[("action", "delete"), ("ids", &id), ("confirm", "yes")]).await;
    assert_eq!(r.status(), 303);
    assert!(items.get(assigned.id).is_none());
}

#[tokio::test]
async fn htmx_requests_get_fragments_and_boosted_ones_full_pages() {
    let t = TestApp::spawn().await;
    let c = root(&t).await;
    let frag = c.http.get(format!("{}/admin/", c.base)).header("HX-Request", "true").send().await.expect("req");
    let body = frag.text().await.unwrap_or_default();
    assert!(!body.contains("<html") && body.contains("Administration"));
    let boosted = c
        .http
        .get(format!("{}/admin/", c.base))
        .header("HX-Request", "true")
        .header("HX-Boosted", "true")
        .send()
        .await
        .expect("req");
    assert!(boosted.text().await.unwrap_or_default().contains("<html"));
}

#[tokio::test]
async fn unknown_pages_and_records_are_404_pages() {
    let t = TestApp::spawn().await;
    let c = root(&t).await;
    for p in ["/nope", "/admin/nope/", "/admin/employees/999/", "/admin/employees/abc/"] {
        let (s, html) = c.text(p).await;
        assert!(s == 404 || s == 400, "{p}: {s}");
        assert!(html.contains("error-page"), "{p} renders an error page");
    }
}
