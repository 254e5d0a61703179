//! A user chapter's Markdown to HTML for `/help`: headings get the ids mdBook gives them (so
//! `chapter.md#anchor` links work in the book and in the app alike), links between user
//! chapters become `/help/<chapter>#anchor`, and links out of the user guide (to operator or
//! developer chapters, which the app does not serve) keep only their text.

use std::collections::HashSet;

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// The text under one heading (up to the next heading), for search.
#[derive(Debug, Clone)]
pub struct Section {
    /// The heading's id: `/help/<chapter>#<id>`.
    pub id: String,
    pub heading: String,
    pub text: String,
}

pub struct Rendered {
    pub title: String,
    pub summary: String,
    pub html: String,
    pub sections: Vec<Section>,
}

/// The id mdBook gives a heading with this text: lowercase, letters, digits, `_` and `-` kept,
/// whitespace made `-`, the rest dropped.
pub fn heading_id(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
            c if c.is_whitespace() => Some('-'),
            _ => None,
        })
        .collect()
}

fn unique(id: String, used: &mut HashSet<String>) -> String {
    if used.insert(id.clone()) {
        return id;
    }
    (1..).map(|n| format!("{id}-{n}")).find(|c| used.insert(c.clone())).unwrap_or(id)
}

/// Where a link of a user chapter goes in the app: `Some(url)`, or `None` to keep only the text.
fn help_url(dest: &str) -> Option<String> {
    if dest.contains("://") || dest.starts_with("mailto:") || dest.starts_with('#') {
        return Some(dest.to_string());
    }
    let (path, anchor) = dest.split_once('#').map_or((dest, None), |(p, a)| (p, Some(a)));
    let slug = path.strip_suffix(".md").filter(|s| !s.is_empty() && !s.contains('/'))?;
    let mut url = format!("/help/{slug}");
    if let Some(a) = anchor {
        url.push('#');
        url.push_str(a);
    }
    Some(url)
}

pub fn render(markdown: &str) -> Rendered {
    let opts = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_SMART_PUNCTUATION;
    let events: Vec<Event<'_>> = Parser::new_ext(markdown, opts).collect();
    let mut out: Vec<Event<'_>> = Vec::with_capacity(events.len());
    let mut used = HashSet::new();
    let mut sections = vec![Section { id: String::new(), heading: String::new(), text: String::new() }];
    let (mut title, mut summary) = (String::new(), String::new());
    let mut in_first_paragraph = false;
    let mut dropped_links = 0usize;
    let mut i = 0;
    while i < events.len() {
        match &events[i] {
            Event::Start(Tag::Heading { level, classes, attrs, .. }) => {
                // Gather the heading's own events, and its text for the id.
                let end = events[i..]
                    .iter()
                    .position(|e| matches!(e, Event::End(TagEnd::Heading(_))))
                    .map_or(events.len(), |p| i + p);
                let inner = &events[i + 1..end];
                let text: String = inner
                    .iter()
                    .filter_map(|e| match e {
                        Event::Text(t) | Event::Code(t) => Some(t.as_ref()),
                        _ => None,
                    })
                    .collect();
                let id = unique(heading_id(&text), &mut used);
                if *level == HeadingLevel::H1 && title.is_empty() {
                    // The page's own title: the layout shows it as the page's h1.
                    title = text.clone();
                    sections.push(Section { id, heading: text, text: String::new() });
                    i = end + 1;
                    continue;
                }
                sections.push(Section { id: id.clone(), heading: text, text: String::new() });
                out.push(Event::Start(Tag::Heading {
                    level: *level,
                    id: Some(CowStr::from(id)),
                    classes: classes.clone(),
                    attrs: attrs.clone(),
                }));
                out.extend(inner.iter().cloned());
                i = end;
                if let Some(e) = events.get(end) {
                    out.push(e.clone());
                }
                i += 1;
                continue;
            }
            Event::Start(Tag::Paragraph) if summary.is_empty() && !title.is_empty() => in_first_paragraph = true,
            Event::Start(Tag::Link { link_type, dest_url, title: t, id }) => match help_url(dest_url) {
                Some(url) => {
                    out.push(Event::Start(Tag::Link {
                        link_type: *link_type,
                        dest_url: CowStr::from(url),
                        title: t.clone(),
                        id: id.clone(),
                    }));
                    i += 1;
                    continue;
                }
                None => {
                    dropped_links += 1;
                    i += 1;
                    continue;
                }
            },
            Event::End(TagEnd::Link) if dropped_links > 0 => {
                dropped_links -= 1;
                i += 1;
                continue;
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(s) = sections.last_mut() {
                    s.text.push_str(t);
                }
                if in_first_paragraph {
                    summary.push_str(t);
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                if let Some(s) = sections.last_mut() {
                    s.text.push(' ');
                }
                if in_first_paragraph {
                    summary.push(' ');
                }
            }
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::TableCell | TagEnd::CodeBlock) => {
                in_first_paragraph = false;
                if let Some(s) = sections.last_mut() {
                    s.text.push(' ');
                }
            }
            _ => {}
        }
        out.push(events[i].clone());
        i += 1;
    }
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, out.into_iter());
    for s in &mut sections {
        s.text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    sections.retain(|s| !s.id.is_empty() || !s.text.is_empty());
    Rendered { title, summary: summary.trim().to_string(), html, sections }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_get_mdbooks_ids() {
        assert_eq!(heading_id("`--passes`: add more rustdoc passes"), "--passes-add-more-rustdoc-passes");
        assert_eq!(heading_id("Points & the daily cap"), "points--the-daily-cap");
        assert_eq!(heading_id("Who has what?"), "who-has-what");
        let r = render("# Inventory\n\nFirst words.\n\n## Items\n\ntext\n\n## Items\n\nmore\n");
        assert!(!r.html.contains("<h1"), "the layout shows the title: {}", r.html);
        assert!(r.html.contains(r#"<h2 id="items">"#) && r.html.contains(r#"<h2 id="items-1">"#), "{}", r.html);
        assert_eq!(r.title, "Inventory");
        assert_eq!(r.summary, "First words.");
    }

    #[test]
    fn links_to_user_chapters_become_help_links_and_others_text() {
        let r = render(
            "# T\n\nSee [kudos](kudos.md#rules), [here](#x), [site](https://example.com/a) and \
             [the operators' guide](../operators/backups.md).\n",
        );
        assert!(r.html.contains(r#"<a href="/help/kudos#rules">kudos</a>"#), "{}", r.html);
        assert!(r.html.contains(r##"<a href="#x">here</a>"##), "{}", r.html);
        assert!(r.html.contains(r#"<a href="https://example.com/a">site</a>"#), "{}", r.html);
        assert!(r.html.contains("and the operators’ guide.") && !r.html.contains("operators/"), "{}", r.html);
    }

    #[test]
    fn sections_hold_their_text_for_search() {
        let r = render(
            "# T\n\nIntro.\n\n## Assigning an item\n\nPick the *employee*.\n\n| a | b |\n|---|---|\n| x | y |\n",
        );
        let s = r.sections.iter().find(|s| s.id == "assigning-an-item").expect("section");
        assert_eq!(s.text, "Pick the employee. a b x y");
    }
}
