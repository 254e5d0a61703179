//! `/help` (the chapters, and search) and `/help/<chapter>`.

use std::sync::Arc;

use maud::{Markup, PreEscaped, html};
use poem::web::{Data, Path, Query};
use poem::{Response, handler};
use serde::Deserialize;

use crate::error::{AppError, AppResult};
use crate::web::layout::{Page, render};
use crate::web::{Access, Ctx, Routes, paths};
use crate::{App, Module};

/// The help pages, as a module of the platform.
pub struct HelpPages;

impl Module for HelpPages {
    fn name(&self) -> &'static str {
        "Help"
    }
    fn routes(&self, r: &mut Routes) {
        r.get("/help", Access::SignedIn, index);
        r.get("/help/:chapter", Access::SignedIn, chapter);
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

fn search_box(q: &str) -> Markup {
    html! {
        form.help-search method="get" action=(paths::help()) role="search" {
            label for="help-q" { "Search the help" }
            input #help-q type="search" name="q" value=(q) placeholder="e.g. assign a laptop";
            button.btn type="submit" { "Search" }
        }
    }
}

#[handler]
fn index(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Query(q): Query<SearchQuery>) -> Response {
    let q = q.q.trim().chars().take(200).collect::<String>();
    let body = if q.is_empty() {
        html! {
            (search_box(""))
            ul.help-chapters {
                @for c in super::chapters() {
                    li { a href=(paths::help_chapter(&c.slug)) { (c.title) } @if !c.summary.is_empty() { p.muted { (c.summary) } } }
                }
            }
        }
    } else {
        let hits = super::search(&q, 30);
        html! {
            (search_box(&q))
            @if hits.is_empty() {
                p { "Nothing in the help mentions " strong { (q) } "." }
            } @else {
                p.muted { (hits.len()) " section" @if hits.len() != 1 { "s" } " mention " strong { (q) } ":" }
                ol.help-results {
                    @for h in &hits {
                        li {
                            a href={ (paths::help_chapter(h.chapter)) "#" (h.section_id) } {
                                (h.chapter_title) @if h.heading != h.chapter_title { " › " (h.heading) }
                            }
                            p.muted { (h.snippet) }
                        }
                    }
                }
            }
        }
    };
    let title = if q.is_empty() { "Help".to_string() } else { format!("Help: {q}") };
    render(&app, &ctx, Page::new(&title, body).crumb("Help", paths::help()))
}

#[handler]
fn chapter(app: Data<&App>, ctx: Data<&Arc<Ctx>>, Path(slug): Path<String>) -> AppResult<Response> {
    let c = super::chapter(&slug).ok_or(AppError::NotFound)?;
    let body = html! {
        (search_box(""))
        article.help-chapter { (PreEscaped(&c.html)) }
    };
    // The chapter's own first heading is its title; the page's h1 says where the reader is.
    Ok(render(&app, &ctx, Page::new(&c.title, body).crumb("Help", paths::help())))
}
