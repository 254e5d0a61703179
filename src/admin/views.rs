//! Markup of the generic admin pages. Pure functions from data to `Markup`.

use maud::{Markup, html};

use super::def::{Kind, ResourceDef};
use super::form::{Cell, Submitted, display_value, render_field};
use super::list::{Page, sortable};
use super::{AdminResource, Dependent, Registry};
use crate::error::FieldErrors;
use crate::store::{AuditAction, AuditEntry, Value};
use crate::web::layout::csrf_field;
use crate::web::{Ctx, paths};

/// The list page's parsed query string.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub q: String,
    pub order: String,
    pub page: usize,
    /// Filter field -> raw value (`yes`, a choice key, an id, `none`; dates use `__from`/`__to`).
    pub filters: Vec<(String, String)>,
}

impl ListParams {
    pub fn from_pairs(def: &ResourceDef, pairs: &[(String, String)]) -> ListParams {
        let mut p = ListParams { page: 1, ..Default::default() };
        for (k, v) in pairs {
            match k.as_str() {
                "q" => p.q = v.trim().to_string(),
                "o" => p.order = v.clone(),
                "page" => p.page = v.parse().unwrap_or(1).max(1),
                other => {
                    let base = other.trim_end_matches("__from").trim_end_matches("__to");
                    if def.filters.contains(&base) && !v.is_empty() {
                        p.filters.push((other.to_string(), v.clone()));
                    }
                }
            }
        }
        p
    }

    /// The query string for these params with some keys replaced.
    pub fn with(&self, set: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if !self.q.is_empty() {
            pairs.push(("q".into(), self.q.clone()));
        }
        if !self.order.is_empty() {
            pairs.push(("o".into(), self.order.clone()));
        }
        for (k, v) in &self.filters {
            pairs.push((k.clone(), v.clone()));
        }
        if self.page > 1 {
            pairs.push(("page".into(), self.page.to_string()));
        }
        for (k, v) in set {
            pairs.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                pairs.push((k.to_string(), v.to_string()));
            }
        }
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        paths::query(&refs)
    }

    pub fn filter(&self, key: &str) -> Option<&str> {
        self.filters.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn link_with(base: &str, qs: &str) -> String {
    if qs.is_empty() { base.to_string() } else { format!("{base}?{qs}") }
}

pub fn list_page(ctx: &Ctx, reg: &Registry, res: &dyn AdminResource, params: &ListParams, page: &Page) -> Markup {
    let def = res.def();
    let base = paths::admin_list(def.slug);
    let per = def.per_page;
    let first = (params.page - 1) * per;
    let pages = page.total.div_ceil(per).max(1);
    let can_delete = ctx.can(&format!("{}.delete", def.slug));
    let cols: Vec<(usize, &super::Field)> =
        def.list_display.iter().filter_map(|c| def.field_index(c).map(|i| (i, &def.fields[i]))).collect();
    let (sort_name, desc) = match params.order.strip_prefix('-') {
        Some(n) => (n, true),
        None => (
            if params.order.is_empty() { def.ordering.trim_start_matches('-') } else { params.order.as_str() },
            params.order.is_empty() && def.ordering.starts_with('-'),
        ),
    };
    html! {
        div.list-layout {
            section.list-main {
                form.searchbar method="get" action=(base) role="search" {
                    input type="search" name="q" value=(params.q) placeholder={ "Search " (def.plural) "…" } aria-label={ "Search " (def.plural) };
                    @for (k, v) in &params.filters { input type="hidden" name=(k) value=(v); }
                    @if !params.order.is_empty() { input type="hidden" name="o" value=(params.order); }
                    button.btn type="submit" { "Search" }
                }
                div.list-meta {
                    @if page.total == 0 { "No " (def.plural) " match." }
                    @else { (first + 1) "–" (first + page.rows.len()) " of " (fmt_count(page.total)) }
                    @if !params.q.is_empty() || !params.filters.is_empty() {
                        " · " a href=(base) { "Clear search and filters" }
                    }
                }
                form.bulk method="post" action=(paths::admin_bulk(def.slug)) {
                    (csrf_field(ctx))
                    @if can_delete {
                        div.bulk-actions {
                            label.sr-only for="bulk-action" { "Action" }
                            select id="bulk-action" name="action" {
                                option value="delete" { "Delete selected " (def.plural) }
                            }
                            button.btn.btn-small type="submit" { "Go" }
                        }
                    }
                    // Wider than the column (long emails, many fields): it scrolls sideways
                    // instead of running under the filters.
                    div.table-scroll { table.list {
                        thead { tr {
                            @if can_delete { th { input.select-all type="checkbox" aria-label="Select all"; } }
                            @for (_, f) in &cols {
                                th class=[matches!(f.kind, Kind::Int | Kind::Money).then_some("num")] {
                                    @if sortable(&f.kind) {
                                        @let next = if sort_name == f.name && !desc { format!("-{}", f.name) } else { f.name.to_string() };
                                        a.sort class=[(sort_name == f.name).then_some(if desc { "sorted-desc" } else { "sorted-asc" })]
                                          href=(link_with(&base, &params.with(&[("o", &next), ("page", "")]))) { (f.label) }
                                    } @else { (f.label) }
                                }
                            }
                        } }
                        tbody {
                            @if page.rows.is_empty() {
                                tr { td.empty colspan=(cols.len() + 1) { "Nothing here yet." } }
                            }
                            @for row in &page.rows {
                                tr {
                                    @if can_delete { td { input.row-select type="checkbox" name="ids" value=(row.id) aria-labelledby={ "row-" (row.id) }; } }
                                    @for (n, (i, f)) in cols.iter().enumerate() {
                                        td class=[matches!(f.kind, Kind::Int | Kind::Money).then_some("num")] {
                                            @if n == 0 {
                                                a id={ "row-" (row.id) } href=(paths::AdminEdit(def.slug, row.id)) { (Cell(reg, f, &row.values[*i])) }
                                            } @else {
                                                (Cell(reg, f, &row.values[*i]))
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    } }
                }
                @if pages > 1 {
                    nav.pagination aria-label="Pages" {
                        @for p in page_links(params.page, pages) {
                            @match p {
                                None => span.gap { "…" },
                                Some(p) if p == params.page => span.current { (p) },
                                Some(p) => a href=(link_with(&base, &params.with(&[("page", &p.to_string())]))) { (p) },
                            }
                        }
                    }
                }
            }
            @if !def.filters.is_empty() {
                aside.filters {
                    h2 { "Filter" }
                    @for f in &def.filters {
                        @if let Some(field) = def.field(f) { (filter_block(reg, &base, params, field)) }
                    }
                }
            }
        }
    }
}

fn fmt_count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Page numbers around the current one, with gaps (`None`).
pub fn page_links(current: usize, pages: usize) -> Vec<Option<usize>> {
    let mut out = Vec::new();
    let mut last = 0;
    for p in 1..=pages {
        if p <= 2 || p + 2 > pages || (p + 2 >= current && p <= current + 2) {
            if last + 1 != p {
                out.push(None);
            }
            out.push(Some(p));
            last = p;
        }
    }
    out
}

fn filter_block(reg: &Registry, base: &str, params: &ListParams, field: &super::Field) -> Markup {
    let current = params.filter(field.name).unwrap_or("");
    let opt = |value: &str, label: String| {
        let href = link_with(base, &params.with(&[(field.name, value), ("page", "")]));
        html! { li { a href=(href) class=[(current == value).then_some("selected")] { (label) } } }
    };
    html! {
        div.filter {
            h3 { "By " (field.label.to_lowercase()) }
            @match field.kind {
                Kind::Bool => ul { (opt("", "All".into())) (opt("yes", "Yes".into())) (opt("no", "No".into())) },
                Kind::Choice(choices) => ul {
                    (opt("", "All".into()))
                    @for (k, l) in choices { (opt(k, l.to_string())) }
                },
                Kind::Ref { target, .. } => ul {
                    (opt("", "All".into()))
                    (opt("none", "None".into()))
                    @let rows = reg.get(target).map(|r| r.model().all()).unwrap_or_default();
                    @if rows.len() <= 30 {
                        @for r in rows { (opt(&r.id.to_string(), r.label.clone())) }
                    } @else if !current.is_empty() && current != "none" {
                        (opt(current, current.parse().map(|id| reg.label_of(target, id)).unwrap_or_default()))
                    }
                },
                Kind::Date => form.filter-form method="get" action=(base) {
                    @for (k, v) in &params.filters {
                        @if !k.starts_with(field.name) { input type="hidden" name=(k) value=(v); }
                    }
                    @if !params.q.is_empty() { input type="hidden" name="q" value=(params.q); }
                    label { "From " input type="date" name={ (field.name) "__from" } value=(params.filter(&format!("{}__from", field.name)).unwrap_or("")); }
                    label { "To " input type="date" name={ (field.name) "__to" } value=(params.filter(&format!("{}__to", field.name)).unwrap_or("")); }
                    button.btn.btn-small type="submit" { "Apply" }
                },
                _ => {}
            }
        }
    }
}

/// The add/change form.
#[allow(clippy::too_many_arguments)]
pub fn edit_form(
    ctx: &Ctx,
    reg: &Registry,
    def: &ResourceDef,
    id: Option<u64>,
    values: &[Value],
    raw: Option<&Submitted<'_>>,
    errors: &FieldErrors,
    can_change: bool,
    extra: Markup,
) -> Markup {
    let action = match id {
        Some(id) => paths::admin_edit(def.slug, id),
        None => paths::admin_new(def.slug),
    };
    html! {
        @if !errors.is_empty() {
            div.form-errors role="alert" {
                "Please correct the errors below."
                @for m in errors.get("") { br; (m) }
            }
        }
        form.form method="post" action=(action) novalidate {
            (csrf_field(ctx))
            @for (i, f) in def.fields.iter().enumerate() {
                @if id.is_some() || !(f.readonly || matches!(f.kind, Kind::Time)) {
                    @if can_change {
                        (render_field(reg, f, &values[i], raw, errors))
                    } @else {
                        div.field.readonly {
                            label { (f.label) }
                            div.readonly-value { (display_value(reg, f, &values[i])) }
                        }
                    }
                }
            }
            @if can_change {
                div.form-actions {
                    button.btn.btn-primary type="submit" { "Save" }
                    @if id.is_none() {
                        button.btn type="submit" name="_continue" value="1" { "Save and add another" }
                    }
                    @if let Some(id) = id {
                        @if ctx.can(&format!("{}.delete", def.slug)) {
                            a.btn.btn-danger href=(paths::admin_delete(def.slug, id)) { "Delete" }
                        }
                    }
                }
            }
        }
        (extra)
    }
}

pub fn delete_confirm(
    ctx: &Ctx,
    def: &ResourceDef,
    targets: &[(u64, String)],
    deps: &[Dependent],
    action: &str,
) -> Markup {
    let blocked: Vec<&Dependent> = deps.iter().filter(|d| d.policy == super::OnDelete::Protect).collect();
    html! {
        div.danger-zone {
            @if !blocked.is_empty() {
                p { "These " (def.plural) " cannot be deleted, because other records refer to them. Change or delete those first:" }
                ul.affected {
                    @for d in &blocked {
                        li { (d.singular) ": " a href=(paths::admin_edit(d.slug, d.id)) { (d.label) } " (" (d.field) ")" }
                    }
                }
            } @else {
                p { "Are you sure you want to delete:" }
                ul.affected { @for (id, l) in targets { li { a href=(paths::admin_edit(def.slug, *id)) { (l) } } } }
                @if !deps.is_empty() {
                    p { "This also affects:" }
                    ul.affected {
                        @for d in deps {
                            li {
                                (d.singular) " " a href=(paths::admin_edit(d.slug, d.id)) { (d.label) }
                                @match d.policy {
                                    super::OnDelete::Cascade => " — will be deleted",
                                    _ => { " — its " (d.field) " will be cleared" },
                                }
                            }
                        }
                    }
                }
                form method="post" action=(action) {
                    (csrf_field(ctx))
                    @for (id, _) in targets { input type="hidden" name="ids" value=(id); }
                    input type="hidden" name="confirm" value="yes";
                    input type="hidden" name="action" value="delete";
                    div.form-actions {
                        button.btn.btn-danger type="submit" { "Yes, delete" }
                        a.btn href=(paths::admin_list(def.slug)) { "No, go back" }
                    }
                }
            }
        }
    }
}

pub fn history(reg: &Registry, def: &ResourceDef, entries: &[(u64, AuditEntry)]) -> Markup {
    html! {
        @if entries.is_empty() { p.muted { "No changes recorded." } }
        @else {
            table.history {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "Changes" } } }
                tbody {
                    @for (_, e) in entries {
                        tr {
                            td { (e.at.format("%Y-%m-%d %H:%M:%S UTC")) }
                            td { (e.actor_label) }
                            td { @match &e.action {
                                AuditAction::Create => "Created",
                                AuditAction::Update => "Changed",
                                AuditAction::Delete => "Deleted",
                                AuditAction::Other(a) => (a),
                            } }
                            td {
                                @if let Some(n) = &e.note { p { (n) } }
                                @if !e.changes.is_empty() {
                                    table.diff {
                                        thead { tr { th { "Field" } th { "Old" } th { "New" } } }
                                        tbody {
                                            @for c in &e.changes {
                                                @let f = def.field(&c.field);
                                                tr {
                                                    td { (f.map(|f| f.label).unwrap_or(&c.field)) }
                                                    td { @if !c.old.is_null() { del { (show(reg, f, &c.old)) } } }
                                                    td { @if !c.new.is_null() { ins { (show(reg, f, &c.new)) } } }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn show(reg: &Registry, f: Option<&super::Field>, v: &Value) -> String {
    match f {
        Some(f) => display_value(reg, f, v),
        None => v.plain(),
    }
}

pub fn index(ctx: &Ctx, reg: &Registry) -> Markup {
    let mut modules: Vec<(&str, Vec<&ResourceDef>)> = Vec::new();
    for r in reg.resources() {
        let d = r.def();
        if !ctx.can(&format!("{}.view", d.slug)) {
            continue;
        }
        match modules.iter_mut().find(|(m, _)| *m == d.module) {
            Some((_, v)) => v.push(d),
            None => modules.push((d.module, vec![d])),
        }
    }
    html! {
        @if modules.is_empty() { p.muted { "You cannot see any admin pages yet. Ask an administrator for access." } }
        div.cards {
            @for (m, defs) in &modules {
                div.card {
                    h2 { (m) }
                    table.simple { tbody {
                        @for d in defs {
                            tr {
                                td { a href=(paths::admin_list(d.slug)) { (capitalise(d.plural)) } }
                                td.num { (fmt_count(reg.get(d.slug).map(|r| r.model().len()).unwrap_or(0))) }
                                td { @if ctx.can(&format!("{}.add", d.slug)) { a href=(paths::admin_new(d.slug)) { "Add" } } }
                            }
                        }
                    } }
                }
            }
        }
    }
}

pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_ends_and_neighbours() {
        let l = page_links(10, 20);
        assert_eq!(l.first(), Some(&Some(1)));
        assert_eq!(l.last(), Some(&Some(20)));
        assert!(l.contains(&Some(8)) && l.contains(&Some(12)) && l.contains(&None));
        assert!(!l.contains(&Some(5)));
    }
}
