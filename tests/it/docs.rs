//! The book under `docs/`: its generated parts are current, every chapter is in its summary,
//! and (in the test command's docs step, on the built book) every link and anchor resolves.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn docs_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/src")
}

fn files_with(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_with(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    files_with(&docs_src(), "md", &mut files);
    files.sort();
    files
}

/// `text` with every `<!-- generated: NAME -->` … `<!-- end generated: NAME -->` region's body
/// replaced by `generated[NAME]`; the names found, and unknown names.
fn fill_regions(text: &str, generated: &HashMap<&str, String>) -> Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(text.len());
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("<!-- generated: ") {
        let open_end = rest[start..].find("-->").ok_or("unclosed generated marker")? + start + 3;
        let name = rest[start + "<!-- generated: ".len()..open_end - 3].trim().to_string();
        let close = format!("<!-- end generated: {name} -->");
        let close_at = rest[open_end..].find(&close).ok_or(format!("no `{close}`"))? + open_end;
        let body = generated.get(name.as_str()).ok_or(format!("unknown generated region {name:?}"))?;
        out.push_str(&rest[..open_end]);
        out.push('\n');
        out.push_str(body);
        rest = &rest[close_at..];
        found.push(name);
    }
    out.push_str(rest);
    Ok((out, found))
}

/// The configuration chapter's tables are the ones `src/config/reference.rs` declares. With
/// `BRAVELY_UPDATE_DOCS=1` the test writes them instead.
#[test]
fn generated_parts_of_the_book_are_current() {
    let generated: HashMap<&str, String> = bravely::config::reference::generated().into_iter().collect();
    let update = std::env::var("BRAVELY_UPDATE_DOCS").is_ok_and(|v| v == "1");
    let mut seen = BTreeSet::new();
    let mut stale = Vec::new();
    for path in markdown_files() {
        let text = std::fs::read_to_string(&path).expect("readable chapter");
        let (filled, names) = fill_regions(&text, &generated).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen.extend(names);
        if filled != text {
            if update {
                std::fs::write(&path, &filled).expect("write chapter");
            } else {
                stale.push(path.display().to_string());
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with src/config/reference.rs: {stale:?}; run BRAVELY_UPDATE_DOCS=1 cargo test --test it docs::"
    );
    let missing: Vec<_> = generated.keys().filter(|k| !seen.contains(**k)).collect();
    assert!(missing.is_empty(), "generated regions no chapter holds: {missing:?}");
}

/// `[text](target)` link targets in Markdown, outside HTML comments and code.
fn link_targets(markdown: &str) -> Vec<String> {
    use pulldown_cmark::{Event, Parser, Tag};
    Parser::new(markdown)
        .filter_map(|e| match e {
            Event::Start(Tag::Link { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

/// mdBook builds only the chapters SUMMARY.md names: a chapter missing there would silently
/// not be in the book (nor would a new one added by a merge).
#[test]
fn every_chapter_is_in_the_summary() {
    let src = docs_src();
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).expect("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = link_targets(&summary).iter().map(|t| src.join(t)).collect();
    let unlisted: Vec<_> = markdown_files()
        .into_iter()
        .filter(|p| !p.ends_with("SUMMARY.md") && !listed.contains(p))
        .map(|p| p.strip_prefix(&src).unwrap_or(&p).display().to_string())
        .collect();
    assert!(unlisted.is_empty(), "chapters not in docs/src/SUMMARY.md: {unlisted:?}");
    let missing: Vec<_> = listed.iter().filter(|p| !p.is_file()).collect();
    assert!(missing.is_empty(), "SUMMARY.md names missing chapters: {missing:?}");
}

/// The ids mdBook gives the headings of a Markdown file.
fn heading_ids(markdown: &str) -> BTreeSet<String> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut ids = BTreeSet::new();
    let mut text: Option<String> = None;
    for e in Parser::new(markdown) {
        match e {
            Event::Start(Tag::Heading { .. }) => text = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = text.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                let id = bravely::help::heading_id(&text.take().unwrap_or_default());
                let unique = (0..).map(|n| if n == 0 { id.clone() } else { format!("{id}-{n}") });
                let free = unique.into_iter().find(|c| !ids.contains(c)).unwrap_or(id);
                ids.insert(free);
            }
            _ => {}
        }
    }
    ids
}

/// The README links into the book (and to itself): every relative link leads to a file of the
/// repository, and every `#anchor` to a heading there.
#[test]
fn readme_links_resolve() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let mut broken = Vec::new();
    let targets: Vec<String> = link_targets(&readme).into_iter().chain(image_targets(&readme)).collect();
    assert!(targets.len() > 20, "only {} links in the README", targets.len());
    for link in targets.iter().filter(|l| !l.contains("://")) {
        let (path, anchor) = link.split_once('#').map_or((link.as_str(), None), |(p, a)| (p, Some(a)));
        let file = if path.is_empty() { root.join("README.md") } else { root.join(path) };
        if !file.is_file() {
            broken.push(format!("{link} (no such file)"));
            continue;
        }
        if let Some(a) = anchor.filter(|a| !a.is_empty()) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if !heading_ids(&text).contains(a) {
                broken.push(format!("{link} (no heading #{a} there)"));
            }
        }
    }
    assert!(broken.is_empty(), "broken links in README.md: {broken:#?}");
}

fn image_targets(markdown: &str) -> Vec<String> {
    use pulldown_cmark::{Event, Parser, Tag};
    Parser::new(markdown)
        .filter_map(|e| match e {
            Event::Start(Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

/// Every `href`/`src` of `page` that points inside the book (with its `#anchor`, if any).
fn local_links(page: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(page);
    let sel = scraper::Selector::parse("[href], [src]").expect("selector");
    doc.select(&sel)
        .filter_map(|el| el.value().attr("href").or_else(|| el.value().attr("src")))
        .filter(|l| !l.contains("://") && !l.starts_with("//") && !l.starts_with("mailto:"))
        .map(str::to_string)
        .collect()
}

fn ids(page: &str) -> BTreeSet<String> {
    let doc = scraper::Html::parse_document(page);
    let sel = scraper::Selector::parse("[id], a[name]").expect("selector");
    doc.select(&sel)
        .filter_map(|el| el.value().attr("id").or_else(|| el.value().attr("name")))
        .map(String::from)
        .collect()
}

/// Every relative link of the built book (`mdbook build`, in the test command's docs step,
/// which sets `BRAVELY_BOOK_DIR`) leads to a file of the book, and every `#anchor` to an id
/// on that page.
#[test]
#[ignore = "needs the built book: the docs step of tests/run.sh runs it with BRAVELY_BOOK_DIR"]
fn built_book_has_no_broken_links() {
    let dir = PathBuf::from(std::env::var("BRAVELY_BOOK_DIR").expect("BRAVELY_BOOK_DIR: the built book"));
    let (pages, checked, broken) = broken_links(&dir);
    assert!(pages > 20, "{} holds {pages} pages: not a built book", dir.display());
    assert!(checked > 100, "only {checked} links checked");
    assert!(broken.is_empty(), "{} broken links in the book:\n{}", broken.len(), broken.join("\n"));
    println!("{pages} pages, {checked} links: all resolve");
}

/// The pages under `dir`, the links checked, and the broken ones.
fn broken_links(dir: &Path) -> (usize, usize, Vec<String>) {
    let mut pages = Vec::new();
    files_with(dir, "html", &mut pages);
    let texts: BTreeMap<PathBuf, String> =
        pages.iter().map(|p| (p.clone(), std::fs::read_to_string(p).expect("page"))).collect();
    let ids_of: BTreeMap<&PathBuf, BTreeSet<String>> = texts.iter().map(|(p, t)| (p, ids(t))).collect();
    let mut broken = Vec::new();
    let mut checked = 0;
    for (page, text) in &texts {
        // mdBook's 404 page resolves its links against `<base href>` (the site's URL, set
        // when it is deployed), not against its own place.
        if page == &dir.join("404.html") {
            continue;
        }
        let shown = page.strip_prefix(dir).unwrap_or(page).display();
        let base = page.parent().unwrap_or(dir);
        for link in local_links(text) {
            let (path, anchor) = link.split_once('#').map_or((link.as_str(), None), |(p, a)| (p, Some(a)));
            let path = path.split('?').next().unwrap_or("");
            checked += 1;
            if path.starts_with('/') {
                broken.push(format!("{shown}: {link} (site-absolute: breaks outside the site root)"));
                continue;
            }
            let target = if path.is_empty() { page.clone() } else { normalize(&base.join(percent_decoded(path))) };
            let target = if target.is_dir() { target.join("index.html") } else { target };
            if !target.is_file() || !target.starts_with(dir) {
                broken.push(format!("{shown}: {link} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor.filter(|a| !a.is_empty())
                && let Some(known) = ids_of.get(&target)
            {
                let anchor = percent_decoded(anchor);
                if !known.contains(&anchor) {
                    broken.push(format!("{shown}: {link} (no #{anchor} there)"));
                }
            }
        }
    }
    (pages.len(), checked, broken)
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The check itself, on a small book of our own: it must find a missing file and a missing
/// anchor, and accept the good links.
#[test]
fn the_link_check_finds_broken_files_and_anchors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("users")).expect("mkdir");
    std::fs::write(
        root.join("index.html"),
        r##"<h1 id="top">T</h1><a href="users/a.html#here">ok</a>
        <a href="#top">ok</a><a href="https://example.com/x">external</a><a href="users/">dir</a>
        <a href="users/gone.html">missing</a><a href="users/a.html#nowhere">bad anchor</a>"##,
    )
    .expect("write");
    std::fs::write(root.join("users/a.html"), r##"<h2 id="here">H</h2><a href="../index.html#top">ok</a>"##)
        .expect("write");
    std::fs::write(root.join("users/index.html"), r##"<a href="../users/a.html">ok</a><a href="/abs.html">abs</a>"##)
        .expect("write");
    std::fs::write(root.join("404.html"), r#"<base href="/"><a href="/">home</a>"#).expect("write");
    let (pages, checked, broken) = broken_links(root);
    assert_eq!((pages, checked), (4, 8), "{broken:?}");
    assert_eq!(broken.len(), 3, "{broken:#?}");
    assert!(broken[0].contains("users/gone.html (no such file)"), "{broken:#?}");
    assert!(broken[1].contains("#nowhere (no #nowhere there)"), "{broken:#?}");
    assert!(broken[2].contains("/abs.html (site-absolute"), "{broken:#?}");
    assert_eq!(percent_decoded("caf%C3%A9"), "café");
    assert_eq!(
        heading_ids("# Two\n## Tricky `Vary`: it\n## Two\n"),
        ["tricky-vary-it", "two", "two-1"].map(String::from).into()
    );
}
