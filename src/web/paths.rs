//! Typed paths: every URL the templates link to is built here.

pub fn home() -> String {
    "/".into()
}
pub fn login(next: Option<&str>) -> String {
    match next {
        Some(n) if !n.is_empty() && n != "/" => format!("/login?next={}", urlencode(n)),
        _ => "/login".into(),
    }
}
/// Starts an organisation sign-in; `next` is where it lands.
pub fn oidc_login(provider: &str, next: &str) -> String {
    match next {
        "" | "/" => format!("/auth/oidc/{}/login", urlencode(provider)),
        n => format!("/auth/oidc/{}/login?next={}", urlencode(provider), urlencode(n)),
    }
}
/// Where providers send the browser back (the redirect URI is `public_url` + this).
pub fn oidc_callback() -> String {
    "/auth/oidc/callback".into()
}
pub fn logout() -> String {
    "/logout".into()
}
pub fn admin_index() -> String {
    "/admin/".into()
}
pub fn admin_list(slug: &str) -> String {
    format!("/admin/{slug}/")
}
pub fn admin_new(slug: &str) -> String {
    format!("/admin/{slug}/new")
}
pub fn admin_edit(slug: &str, id: u64) -> String {
    format!("/admin/{slug}/{id}/")
}
/// `admin_edit` as a template value that writes itself without allocating (list rows).
pub struct AdminEdit<'a>(pub &'a str, pub u64);

impl maud::Render for AdminEdit<'_> {
    fn render_to(&self, buf: &mut String) {
        buf.push_str("/admin/");
        buf.push_str(self.0);
        buf.push('/');
        buf.push_str(itoa::Buffer::new().format(self.1));
        buf.push('/');
    }
}

pub fn admin_delete(slug: &str, id: u64) -> String {
    format!("/admin/{slug}/{id}/delete")
}
pub fn admin_history(slug: &str, id: u64) -> String {
    format!("/admin/{slug}/{id}/history")
}
pub fn admin_export(slug: &str, query: &str) -> String {
    if query.is_empty() { format!("/admin/{slug}/export.csv") } else { format!("/admin/{slug}/export.csv?{query}") }
}
pub fn admin_import(slug: &str) -> String {
    format!("/admin/{slug}/import")
}
pub fn admin_import_job(slug: &str, job: u64) -> String {
    format!("/admin/{slug}/import/{job}")
}
pub fn admin_bulk(slug: &str) -> String {
    format!("/admin/{slug}/bulk")
}
pub fn admin_lookup(slug: &str) -> String {
    format!("/admin/{slug}/lookup")
}
pub fn help() -> String {
    "/help".into()
}
pub fn help_chapter(chapter: &str) -> String {
    format!("/help/{}", urlencode(chapter))
}
pub fn inventory() -> String {
    "/inventory".into()
}
pub fn inventory_person(employee: u64) -> String {
    format!("/inventory/people/{employee}")
}
pub fn inventory_people() -> String {
    "/inventory/people".into()
}
pub fn item_assign(item: u64) -> String {
    format!("/inventory/items/{item}/assign")
}
pub fn item_panel(item: u64) -> String {
    format!("/inventory/items/{item}/panel")
}
pub fn assignment_return(assignment: u64) -> String {
    format!("/inventory/assignments/{assignment}/return")
}
pub fn setup(token: &str) -> String {
    format!("/setup/{token}")
}
pub fn account_tokens() -> String {
    "/account/tokens".into()
}
pub fn account_token_revoke(id: u64) -> String {
    format!("/account/tokens/{id}/revoke")
}

/// Percent-encodes a query-string component.
pub fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Builds a query string from pairs, skipping empty values.
pub fn query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}
