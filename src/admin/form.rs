//! Parsing submitted forms (and CSV cells) into typed values, and rendering form fields.

use maud::{Markup, html};

use super::Registry;
use super::def::{Field, Kind, ResourceDef, Values};
use crate::error::FieldErrors;
use crate::money::{Currency, Money};
use crate::store::Value;
use crate::web::paths;

/// Below this many rows a reference is picked from a plain `<select>`; above, by typeahead.
pub const SELECT_MAX: usize = 200;

/// Raw submitted pairs; a name may repeat (multi-selects).
pub struct Submitted<'a>(pub &'a [(String, String)]);

impl Submitted<'_> {
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "y" | "1" => Some(true),
        "" | "off" | "false" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

pub fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("Enter a date as YYYY-MM-DD, not {:?}.", s.trim()))
}

/// Parses one field's raw text. `Ok(Value::Null)` for empty input.
pub fn parse_value(
    reg: &Registry,
    field: &Field,
    raw: &[&str],
    search_text: Option<&str>,
    currency: Currency,
) -> Result<Value, String> {
    let first = raw.first().map(|s| s.trim()).unwrap_or("");
    let v = match field.kind {
        Kind::Text | Kind::LongText | Kind::Password => Value::text(first),
        Kind::Email => {
            let e = first.to_lowercase();
            if !e.is_empty() && !crate::auth::model::valid_email(&e) {
                return Err("Enter a valid email address.".into());
            }
            Value::text(e)
        }
        Kind::Int => {
            if first.is_empty() {
                Value::Null
            } else {
                Value::Int(first.parse::<i64>().map_err(|_| format!("Enter a whole number, not {first:?}."))?)
            }
        }
        Kind::Bool => Value::Bool(parse_bool(first).ok_or_else(|| format!("Enter yes or no, not {first:?}."))?),
        Kind::Date => {
            if first.is_empty() {
                Value::Null
            } else {
                Value::Date(parse_date(first)?)
            }
        }
        Kind::Time => Value::Null,
        Kind::Money => {
            if first.is_empty() {
                Value::Null
            } else {
                Value::Money(Money::parse(first, currency)?)
            }
        }
        Kind::Choice(choices) => {
            if first.is_empty() {
                Value::Null
            } else {
                let key = choices
                    .iter()
                    .find(|(k, l)| k.eq_ignore_ascii_case(first) || l.eq_ignore_ascii_case(first))
                    .map(|(k, _)| *k)
                    .ok_or_else(|| {
                        format!("Choose one of: {}.", choices.iter().map(|(_, l)| *l).collect::<Vec<_>>().join(", "))
                    })?;
                Value::text(key)
            }
        }
        Kind::Ref { target, .. } => {
            let model = reg.get(target).map(|r| r.model());
            if first.is_empty() {
                match (search_text.map(str::trim).filter(|s| !s.is_empty()), model) {
                    // No JavaScript: resolve the typed text to exactly one record.
                    (Some(text), Some(m)) => Value::Ref(m.resolve(text)?),
                    _ => Value::Null,
                }
            } else {
                let id: u64 = first.parse().map_err(|_| format!("{first:?} is not a record id."))?;
                if model.is_some_and(|m| m.get(id).is_none()) {
                    return Err(format!("There is no record #{id} to refer to."));
                }
                Value::Ref(id)
            }
        }
        Kind::Refs { target } => {
            let mut ids = Vec::new();
            for r in raw.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
                let id: u64 = r.parse().map_err(|_| format!("{r:?} is not a record id."))?;
                if reg.get(target).is_some_and(|m| m.model().get(id).is_none()) {
                    return Err(format!("There is no record #{id} to refer to."));
                }
                ids.push(id);
            }
            ids.sort_unstable();
            ids.dedup();
            Value::Refs(ids)
        }
        Kind::Permissions => {
            let mut out = Vec::new();
            for p in raw.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
                if !reg.permissions.iter().any(|(c, _)| c == p) {
                    return Err(format!("{p:?} is not a known permission."));
                }
                out.push(p.to_string());
            }
            out.sort();
            out.dedup();
            Value::Texts(out)
        }
    };
    Ok(v)
}

/// Parses every editable field of a form submission.
pub fn parse_form(
    reg: &Registry,
    def: &ResourceDef,
    sub: &Submitted<'_>,
    currency: Currency,
    creating: bool,
) -> (Values, FieldErrors) {
    let mut values = Values::new();
    let mut errs = FieldErrors::new();
    for f in def.fields.iter().filter(|f| !f.readonly && !matches!(f.kind, Kind::Time)) {
        let raw = sub.all(f.name);
        let search = sub.one(&format!("{}__search", f.name));
        match parse_value(reg, f, &raw, search, currency) {
            Ok(v) => {
                let missing = v.is_null() || matches!(&v, Value::Refs(x) if x.is_empty());
                let needs = f.required && (creating || !matches!(f.kind, Kind::Password));
                if needs && missing && !matches!(f.kind, Kind::Bool) {
                    errs.add(f.name, "This field is required.");
                }
                values.insert(f.name, v);
            }
            Err(m) => errs.add(f.name, m),
        }
    }
    (values, errs)
}

fn display_input_value(field: &Field, v: &Value) -> String {
    match (field.kind, v) {
        (Kind::Password, _) => String::new(),
        (_, Value::Money(m)) => m.to_string(),
        (_, v) => v.plain(),
    }
}

/// One form field with its label, help and errors. `raw` overrides the value after a failed submit.
pub fn render_field(
    reg: &Registry,
    field: &Field,
    value: &Value,
    raw: Option<&Submitted<'_>>,
    errors: &FieldErrors,
) -> Markup {
    let errs = errors.get(field.name);
    let id = format!("f-{}", field.name);
    let text_value =
        raw.and_then(|r| r.one(field.name).map(str::to_string)).unwrap_or_else(|| display_input_value(field, value));
    let class = if errs.is_empty() { "field" } else { "field has-error" };
    if field.readonly || matches!(field.kind, Kind::Time) {
        return html! {
            div.field.readonly {
                label { (field.label) }
                div.readonly-value { (display_value(reg, field, value)) }
            }
        };
    }
    html! {
        @if matches!(field.kind, Kind::Bool) {
            div class={ (class) " checkbox" } {
                @let checked = match raw { Some(r) => r.one(field.name).and_then(parse_bool).unwrap_or(false), None => matches!(value, Value::Bool(true)) };
                input type="checkbox" id=(id) name=(field.name) value="on" checked[checked];
                label for=(id) { (field.label) }
                (help_and_errors(field, errs))
            }
        } @else {
            div class=(class) {
                label for=(id) { (field.label) @if field.required { " *" } }
                (input(reg, field, &id, value, &text_value, raw))
                (help_and_errors(field, errs))
            }
        }
    }
}

fn help_and_errors(field: &Field, errs: &[String]) -> Markup {
    html! {
        @if !field.help.is_empty() { p.help { (field.help) } }
        @if !errs.is_empty() {
            ul.errorlist { @for e in errs { li { (e) } } }
        }
    }
}

fn input(reg: &Registry, field: &Field, id: &str, value: &Value, text: &str, raw: Option<&Submitted<'_>>) -> Markup {
    match field.kind {
        Kind::LongText => html! { textarea id=(id) name=(field.name) rows="4" { (text) } },
        Kind::Email => {
            html! { input type="email" id=(id) name=(field.name) value=(text) required[field.required] autocomplete="off"; }
        }
        Kind::Int => {
            html! { input type="number" step="1" id=(id) name=(field.name) value=(text) required[field.required]; }
        }
        Kind::Date => html! { input type="date" id=(id) name=(field.name) value=(text) required[field.required]; },
        Kind::Money => {
            html! { input type="text" inputmode="decimal" id=(id) name=(field.name) value=(text) placeholder="1299.00 EUR"; }
        }
        Kind::Password => {
            html! { input type="password" id=(id) name=(field.name) value="" autocomplete="new-password"; }
        }
        Kind::Choice(choices) => html! {
            select id=(id) name=(field.name) required[field.required] {
                @if !field.required { option value="" { "—" } }
                @for (k, l) in choices {
                    option value=(k) selected[text == *k] { (l) }
                }
            }
        },
        Kind::Ref { target, .. } => ref_picker(reg, field, id, target, value, raw),
        Kind::Refs { target } => {
            let chosen: Vec<u64> = match raw {
                Some(r) => r.all(field.name).iter().filter_map(|s| s.parse().ok()).collect(),
                None => match value {
                    Value::Refs(v) => v.clone(),
                    _ => vec![],
                },
            };
            let rows = reg.get(target).map(|r| r.model().all()).unwrap_or_default();
            html! {
                select id=(id) name=(field.name) multiple size=(rows.len().clamp(3, 8)) {
                    @for r in rows { option value=(r.id) selected[chosen.contains(&r.id)] { (r.label) } }
                }
            }
        }
        Kind::Permissions => {
            let chosen: Vec<String> = match raw {
                Some(r) => r.all(field.name).iter().map(|s| s.to_string()).collect(),
                None => match value {
                    Value::Texts(v) => v.clone(),
                    _ => vec![],
                },
            };
            html! {
                select id=(id) name=(field.name) multiple size="10" {
                    @for (code, desc) in &reg.permissions {
                        option value=(code) selected[chosen.contains(code)] { (code) " — " (desc) }
                    }
                }
            }
        }
        Kind::Text | Kind::Bool | Kind::Time => {
            html! { input type="text" id=(id) name=(field.name) value=(text) required[field.required]; }
        }
    }
}

/// A reference picker: a `<select>` for small tables, an htmx typeahead for large ones.
pub fn ref_picker(
    reg: &Registry,
    field: &Field,
    id: &str,
    target: &str,
    value: &Value,
    raw: Option<&Submitted<'_>>,
) -> Markup {
    let Some(res) = reg.get(target) else { return html! {} };
    let current: Option<u64> = match raw {
        Some(r) => r.one(field.name).and_then(|s| s.parse().ok()),
        None => value.as_ref_id(),
    };
    if res.model().len() <= SELECT_MAX {
        let rows = res.model().all();
        return html! {
            select id=(id) name=(field.name) required[field.required] {
                option value="" { "—" }
                @for r in rows { option value=(r.id) selected[current == Some(r.id)] { (r.label) } }
            }
        };
    }
    let label = current.and_then(|i| res.model().label(i)).unwrap_or_default();
    typeahead(field.name, id, target, current, &label, &[])
}

/// A search box that fills a list of options from `/admin/{target}/lookup`; `filters` are
/// list filters applied to the options (e.g. only active employees).
pub fn typeahead(
    name: &str,
    id: &str,
    target: &str,
    current: Option<u64>,
    label: &str,
    filters: &[(&str, &str)],
) -> Markup {
    let results_id = format!("{id}-results");
    let mut vals = serde_json::Map::new();
    vals.insert("name".into(), serde_json::Value::String(name.to_string()));
    for (k, v) in filters {
        vals.insert((*k).to_string(), serde_json::Value::String((*v).to_string()));
    }
    let vals = serde_json::Value::Object(vals).to_string();
    html! {
        div.typeahead {
            input type="search" id=(id) name={ (name) "__search" } value=(label) autocomplete="off"
                placeholder="Type to search…"
                hx-get=(paths::admin_lookup(target)) hx-trigger="input changed delay:200ms, focus"
                hx-target={ "#" (results_id) } hx-swap="innerHTML" hx-vals=(vals);
            input type="hidden" name=(name) value=(current.map(|c| c.to_string()).unwrap_or_default());
            ul.typeahead-results id=(results_id) role="listbox" {}
        }
    }
}

/// Appends `s` to `buf` with HTML's special characters escaped (a byte scan with bulk copies;
/// list pages escape hundreds of cells per request).
pub fn escape_into(buf: &mut String, s: &str) {
    let bytes = s.as_bytes();
    // Most cells need no escaping at all: find the first special byte, if any.
    let Some(first) = bytes.iter().position(|b| matches!(b, b'&' | b'<' | b'>' | b'"')) else {
        buf.push_str(s);
        return;
    };
    let (bytes, s) = {
        buf.push_str(&s[..first]);
        (&bytes[first..], &s[first..])
    };
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => continue,
        };
        buf.push_str(&s[start..i]);
        buf.push_str(rep);
        start = i + 1;
    }
    buf.push_str(&s[start..]);
}

/// Writes `YYYY-MM-DD` without going through a format string.
pub fn push_date(buf: &mut String, d: chrono::NaiveDate) {
    use chrono::Datelike;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        buf.push_str(&d.to_string());
        return;
    }
    let digits = [y / 1000, y / 100 % 10, y / 10 % 10, y % 10];
    for x in digits {
        buf.push((b'0' + x as u8) as char);
    }
    buf.push('-');
    buf.push((b'0' + (m / 10) as u8) as char);
    buf.push((b'0' + (m % 10) as u8) as char);
    buf.push('-');
    buf.push((b'0' + (day / 10) as u8) as char);
    buf.push((b'0' + (day % 10) as u8) as char);
}

/// Text rendered with [`escape_into`] (maud's own escaper goes character by character).
pub struct Esc<'a>(pub &'a str);

impl maud::Render for Esc<'_> {
    fn render_to(&self, buf: &mut String) {
        escape_into(buf, self.0);
    }
}

/// A list cell: renders like [`display_value`] straight into the page, without temporaries.
pub struct Cell<'a>(pub &'a Registry, pub &'a Field, pub &'a Value);

impl maud::Render for Cell<'_> {
    fn render_to(&self, buf: &mut String) {
        let Cell(reg, field, v) = *self;
        match (field.kind, v) {
            (_, Value::Null) => buf.push('—'),
            (Kind::Bool, Value::Bool(b)) => buf.push_str(if *b { "Yes" } else { "No" }),
            (_, Value::Text(s)) if !matches!(field.kind, Kind::Choice(_)) => escape_into(buf, s),
            (_, Value::Date(d)) => push_date(buf, *d),
            (_, Value::Int(i)) => buf.push_str(itoa::Buffer::new().format(*i)),
            (Kind::Ref { target, .. }, Value::Ref(id)) => match reg.get(target).and_then(|r| r.model().get(*id)) {
                Some(row) => escape_into(buf, &row.label),
                None => escape_into(buf, &reg.label_of(target, *id)),
            },
            _ => escape_into(buf, &display_value(reg, field, v)),
        }
    }
}

/// A value for display (lists, read-only fields, history), with references as labels.
pub fn display_value(reg: &Registry, field: &Field, v: &Value) -> String {
    match (field.kind, v) {
        (_, Value::Null) => "—".into(),
        (Kind::Bool, Value::Bool(b)) => if *b { "Yes" } else { "No" }.into(),
        (Kind::Choice(choices), Value::Text(k)) => {
            choices.iter().find(|(c, _)| c == k).map(|(_, l)| l.to_string()).unwrap_or_else(|| k.clone())
        }
        (Kind::Ref { target, .. }, Value::Ref(id)) => reg.label_of(target, *id),
        (Kind::Refs { target }, Value::Refs(ids)) => {
            ids.iter().map(|i| reg.label_of(target, *i)).collect::<Vec<_>>().join(", ")
        }
        (_, Value::Money(m)) => m.display(),
        (_, Value::Time(t)) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        (_, v) => v.plain(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_html_rules() {
        let mut s = String::new();
        escape_into(&mut s, r#"a<b>&"c" ok"#);
        assert_eq!(s, "a&lt;b&gt;&amp;&quot;c&quot; ok");
    }

    #[test]
    fn dates_are_iso() {
        let mut s = String::new();
        push_date(&mut s, chrono::NaiveDate::from_ymd_opt(2026, 3, 9).expect("valid"));
        assert_eq!(s, "2026-03-09");
    }
}
