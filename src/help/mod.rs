//! Help inside the app: the user guide's chapters (`docs/src/users/*.md`, embedded at build
//! time) rendered with the app's layout at `/help/<chapter>`, searchable at `/help?q=…`.
//!
//! Each module names its chapter ([`crate::Module::help`]); the header's "?" link of a page
//! leads to the chapter of the module whose path prefix (or admin resource) the page is under.
//! The chapters are the book's own files, so the book and the app never disagree.

pub mod handlers;
mod render;

use std::sync::OnceLock;

use rust_embed::RustEmbed;

pub use render::{Section, heading_id};

#[derive(RustEmbed)]
#[folder = "docs/src/users/"]
#[include = "*.md"]
struct Sources;

/// The book's table of contents: the user chapters are listed in this order.
const SUMMARY: &str = include_str!("../../docs/src/SUMMARY.md");

/// The chapter a page without a module of its own links to (the home page, `/admin/`).
pub const GENERAL: &str = "getting-around";

/// What a module's pages link to as their help.
#[derive(Debug, Clone, Copy)]
pub struct Help {
    /// The chapter, `docs/src/users/<chapter>.md`.
    pub chapter: &'static str,
    /// Path prefixes of the module's own pages (`/inventory`); its admin resources' pages
    /// (`/admin/<slug>/…`) are added by the platform.
    pub prefixes: &'static [&'static str],
}

/// One rendered chapter.
#[derive(Debug)]
pub struct Chapter {
    /// The file's stem: `/help/<slug>`.
    pub slug: String,
    /// Its first heading.
    pub title: String,
    /// The first paragraph, as plain text (for the list of chapters).
    pub summary: String,
    pub html: String,
    /// Its parts under each heading, as plain text, for search.
    pub sections: Vec<Section>,
}

/// Every user chapter, in the book's order (then any the summary does not list, by name).
pub fn chapters() -> &'static [Chapter] {
    static CHAPTERS: OnceLock<Vec<Chapter>> = OnceLock::new();
    CHAPTERS.get_or_init(|| {
        let mut order: Vec<String> = SUMMARY
            .lines()
            .filter_map(|l| l.split("](users/").nth(1))
            .filter_map(|rest| rest.split(".md").next())
            .map(str::to_string)
            .collect();
        let mut rest: Vec<String> = Sources::iter()
            .filter_map(|f| f.strip_suffix(".md").map(str::to_string))
            .filter(|s| !order.contains(s))
            .collect();
        rest.sort();
        order.extend(rest);
        order
            .into_iter()
            .filter_map(|slug| {
                let file = Sources::get(&format!("{slug}.md"))?;
                let text = String::from_utf8_lossy(&file.data).into_owned();
                let r = render::render(&text);
                Some(Chapter { slug, title: r.title, summary: r.summary, html: r.html, sections: r.sections })
            })
            .collect()
    })
}

/// Whether `docs/src/users/<slug>.md` is embedded (without rendering any chapter).
pub fn exists(slug: &str) -> bool {
    Sources::get(&format!("{slug}.md")).is_some()
}

pub fn chapter(slug: &str) -> Option<&'static Chapter> {
    chapters().iter().find(|c| c.slug == slug)
}

/// The chapter whose prefix is the longest one `path` falls under, else [`GENERAL`].
pub fn chapter_for<'a>(map: &'a [(String, &'static str)], path: &str) -> &'a str {
    map.iter()
        .filter(|(prefix, _)| under(path, prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or(GENERAL, |(_, c)| c)
}

/// `/kudos` covers `/kudos` and `/kudos/feed`, not `/kudosx`; `/admin/items/` covers its pages.
fn under(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?']),
        None => prefix.ends_with('/') && path == prefix.trim_end_matches('/'),
    }
}

/// One search result: a section of a chapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub chapter: &'static str,
    pub chapter_title: &'static str,
    pub section_id: &'static str,
    pub heading: &'static str,
    /// Text around the first match.
    pub snippet: String,
}

/// Sections holding every word of `query` (case-insensitive), best first: matches in the
/// heading, then more matches. At most `limit`.
pub fn search(query: &str, limit: usize) -> Vec<Hit> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).filter(|w| !w.is_empty()).collect();
    if words.is_empty() {
        return vec![];
    }
    let mut scored: Vec<(usize, usize, Hit)> = Vec::new();
    for (order, c) in chapters().iter().enumerate() {
        for s in &c.sections {
            let (heading, text) = (s.heading.to_lowercase(), s.text.to_lowercase());
            if !words.iter().all(|w| heading.contains(w.as_str()) || text.contains(w.as_str())) {
                continue;
            }
            let score =
                words.iter().map(|w| 10 * heading.matches(w.as_str()).count() + text.matches(w.as_str()).count()).sum();
            let snippet = snippet(&s.text, &text, &words[0]);
            scored.push((
                score,
                order,
                Hit { chapter: &c.slug, chapter_title: &c.title, section_id: &s.id, heading: &s.heading, snippet },
            ));
        }
    }
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(limit).map(|(_, _, h)| h).collect()
}

/// About 160 characters of `text` around the first place `word` occurs (`lower` is `text`
/// lowercased; both are walked by characters, so any script is cut on a boundary).
fn snippet(text: &str, lower: &str, word: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = lower.find(word).map_or(0, |b| lower[..b].chars().count()).min(chars.len());
    let start = at.saturating_sub(60);
    let end = (at + 100).min(chars.len());
    let mut out: String = chars[start..end].iter().collect();
    if start > 0 {
        out.insert(0, '…');
    }
    if end < chars.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_names_a_chapter_that_exists() {
        for m in crate::modules() {
            if let Some(h) = m.help() {
                assert!(chapter(h.chapter).is_some(), "{}: no chapter docs/src/users/{}.md", m.name(), h.chapter);
            }
        }
        assert!(chapter(GENERAL).is_some());
    }

    #[test]
    fn chapters_follow_the_summary() {
        let slugs: Vec<&str> = chapters().iter().map(|c| c.slug.as_str()).collect();
        assert_eq!(slugs.first(), Some(&GENERAL), "{slugs:?}");
        assert!(slugs.contains(&"inventory") && slugs.contains(&"kudos"), "{slugs:?}");
    }

    #[test]
    fn pages_map_to_chapters_by_longest_prefix() {
        let map = vec![
            ("/kudos".to_string(), "kudos"),
            ("/admin/items/".to_string(), "inventory"),
            ("/admin/item-kinds/".to_string(), "inventory"),
            ("/inventory".to_string(), "inventory"),
        ];
        assert_eq!(chapter_for(&map, "/kudos/feed"), "kudos");
        assert_eq!(chapter_for(&map, "/kudos?month=2026-01"), "kudos");
        assert_eq!(chapter_for(&map, "/kudosx"), GENERAL);
        assert_eq!(chapter_for(&map, "/admin/items/12/history"), "inventory");
        assert_eq!(chapter_for(&map, "/admin/items"), "inventory");
        assert_eq!(chapter_for(&map, "/admin/"), GENERAL);
        assert_eq!(chapter_for(&map, "/"), GENERAL);
    }

    #[test]
    fn snippets_cut_on_characters() {
        let text = format!("{}Zażółć gęślą jaźń {}", "ą".repeat(100), "ę".repeat(200));
        let s = snippet(&text, &text.to_lowercase(), "gęślą");
        assert!(s.starts_with('…') && s.ends_with('…') && s.contains("gęślą"), "{s}");
    }
}
