//! Help inside the app: the user guide's chapters at `/help`, rendered with the app's layout,
//! searchable, and linked from every page's "?".

use crate::harness::{Client, TestApp, location};

fn select<'a>(doc: &'a scraper::Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&scraper::Selector::parse(css).expect("selector")).collect()
}

fn text_of(doc: &scraper::Html, css: &str) -> Vec<String> {
    select(doc, css).iter().map(|e| e.text().collect::<String>().trim().to_string()).collect()
}

/// The "?" link's target on the page at `path`.
async fn help_link(c: &Client, path: &str) -> String {
    let (status, html) = c.text(path).await;
    assert_eq!(status, 200, "{path}");
    let doc = scraper::Html::parse_document(&html);
    let links: Vec<String> =
        select(&doc, "header a.help-link").iter().filter_map(|a| a.value().attr("href").map(String::from)).collect();
    assert_eq!(links.len(), 1, "{path}: one \"?\" in the header, got {links:?}");
    links[0].clone()
}

async fn signed_in() -> (TestApp, Client) {
    let t = TestApp::spawn().await;
    // Only the permission to see items: help is for everyone signed in.
    t.user("ana@example.com", false, &["items.view"]).await;
    let c = t.login("ana@example.com").await;
    (t, c)
}

#[tokio::test]
async fn help_lists_the_user_chapters() {
    let (_t, c) = signed_in().await;
    let (status, html) = c.text("/help").await;
    assert_eq!(status, 200);
    let doc = scraper::Html::parse_document(&html);
    let links: Vec<(String, String)> = select(&doc, "ul.help-chapters a")
        .iter()
        .map(|a| (a.text().collect::<String>(), a.value().attr("href").unwrap_or("").to_string()))
        .collect();
    // Every chapter of docs/src/users, in the book's order, each linking to its page.
    let expected = [
        ("Using Bravely", "/help/getting-around"),
        ("People", "/help/people"),
        ("Inventory", "/help/inventory"),
        ("Kudos", "/help/kudos"),
        ("Backups", "/help/backups"),
        ("Accounts and administration", "/help/accounts"),
    ];
    let got: Vec<(&str, &str)> = links.iter().map(|(t, h)| (t.as_str(), h.as_str())).collect();
    assert_eq!(got, expected);
    assert_eq!(select(&doc, "form.help-search input[name=q]").len(), 1, "a search box");
}

#[tokio::test]
async fn a_chapter_renders_with_the_apps_layout() {
    let (_t, c) = signed_in().await;
    let (status, html) = c.text("/help/inventory").await;
    assert_eq!(status, 200);
    let doc = scraper::Html::parse_document(&html);
    assert_eq!(text_of(&doc, "h1"), ["Inventory"], "the chapter's title is the page's one h1");
    assert_eq!(select(&doc, "header.topbar").len(), 1, "the app's header");
    assert_eq!(select(&doc, "nav.sidebar").len(), 1, "the app's navigation");
    let headings = text_of(&doc, "article.help-chapter h2");
    assert!(headings.contains(&"Assigning and returning".to_string()), "{headings:?}");
    // Headings carry mdBook's ids, so the book's anchors work here too.
    assert_eq!(select(&doc, "h2#assigning-and-returning").len(), 1);
    // Links to other user chapters stay inside /help; none lead into the book's source paths.
    let hrefs: Vec<String> = select(&doc, "article.help-chapter a[href]")
        .iter()
        .filter_map(|a| a.value().attr("href").map(String::from))
        .collect();
    assert!(hrefs.iter().any(|h| h.starts_with("/help/getting-around#")), "{hrefs:?}");
    assert!(hrefs.iter().all(|h| !h.contains(".md")), "{hrefs:?}");
    // Every /help link of every chapter leads to a chapter that exists, and to an id on it.
    for slug in ["getting-around", "people", "inventory", "kudos", "backups", "accounts"] {
        let (status, html) = c.text(&format!("/help/{slug}")).await;
        assert_eq!(status, 200, "{slug}");
        let doc = scraper::Html::parse_document(&html);
        for a in select(&doc, "article.help-chapter a[href]") {
            let href = a.value().attr("href").unwrap_or("");
            let Some(rest) = href.strip_prefix("/help/") else { continue };
            let (target, anchor) = rest.split_once('#').unwrap_or((rest, ""));
            let (status, page) = c.text(&format!("/help/{target}")).await;
            assert_eq!(status, 200, "{slug}: {href}");
            if !anchor.is_empty() {
                assert!(page.contains(&format!("id=\"{anchor}\"")), "{slug}: {href} has no such anchor");
            }
        }
    }
}

#[tokio::test]
async fn search_finds_a_word_and_links_to_its_section() {
    let (_t, c) = signed_in().await;
    let (status, html) = c.text("/help?q=Serialised").await;
    assert_eq!(status, 200);
    let doc = scraper::Html::parse_document(&html);
    let hits: Vec<String> =
        select(&doc, "ol.help-results a").iter().filter_map(|a| a.value().attr("href").map(String::from)).collect();
    assert!(hits.contains(&"/help/inventory#item-kinds-and-items".to_string()), "{hits:?}");
    // Every word must be there: two words that no section has together find nothing.
    let (_, html) = c.text("/help?q=serialised%20leaderboard%20zebra").await;
    assert!(html.contains("Nothing in the help mentions"), "{html}");
    // The query is shown back escaped, never as markup.
    let (_, html) = c.text("/help?q=%3Cscript%3Ex").await;
    assert!(html.contains("&lt;script&gt;x") && !html.contains("<script>x"), "query escaped");
}

#[tokio::test]
async fn the_question_mark_leads_to_the_pages_chapter() {
    let t = TestApp::spawn().await;
    t.user("root@example.com", true, &[]).await;
    let c = t.login("root@example.com").await;
    for (page, chapter) in [
        ("/inventory", "/help/inventory"),
        ("/inventory/people", "/help/inventory"),
        ("/admin/items/", "/help/inventory"),
        ("/admin/item-kinds/new", "/help/inventory"),
        ("/admin/employees/", "/help/people"),
        ("/kudos/feed", "/help/kudos"),
        ("/backups", "/help/backups"),
        ("/jobs", "/help/accounts"),
        ("/account/tokens", "/help/accounts"),
        ("/admin/users/", "/help/accounts"),
        ("/", "/help/getting-around"),
    ] {
        assert_eq!(help_link(&c, page).await, chapter, "the ? of {page}");
    }
    // Followed from an inventory page, it opens the inventory chapter.
    let target = help_link(&c, "/admin/items/").await;
    let (status, html) = c.text(&target).await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&scraper::Html::parse_document(&html), "h1"), ["Inventory"]);
}

#[tokio::test]
async fn unknown_chapters_are_not_found_and_help_needs_a_sign_in() {
    let (t, c) = signed_in().await;
    assert_eq!(c.text("/help/no-such-chapter").await.0, 404);
    assert_eq!(c.text("/help/..%2Foperators%2Fsecurity").await.0, 404);
    let anonymous = t.client();
    let r = anonymous.get("/help/inventory").await;
    assert_eq!(r.status(), 303);
    assert!(location(&r).starts_with("/login"), "{}", location(&r));
}
