//! Embedded assets served under content-hashed names with a one-year immutable cache.

use std::collections::HashMap;
use std::sync::OnceLock;

use poem::http::{StatusCode, header};
use poem::{Response, handler, web::Path};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
#[exclude = "*.md"]
struct Assets;

struct Table {
    /// "app.css" -> "app.1a2b3c4d5e.css"
    hashed: HashMap<String, String>,
    /// "app.1a2b3c4d5e.css" -> "app.css"
    original: HashMap<String, String>,
}

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| {
        let mut hashed = HashMap::new();
        let mut original = HashMap::new();
        for name in Assets::iter() {
            let Some(file) = Assets::get(&name) else { continue };
            let hash = hex::encode(&file.metadata.sha256_hash()[..5]);
            let with_hash = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
                None => format!("{name}.{hash}"),
            };
            hashed.insert(name.to_string(), with_hash.clone());
            original.insert(with_hash, name.to_string());
        }
        Table { hashed, original }
    })
}

/// The URL of an embedded asset, e.g. `asset_url("app.css")` -> "/assets/app.1a2b3c4d5e.css".
pub fn asset_url(name: &str) -> String {
    match table().hashed.get(name) {
        Some(h) => format!("/assets/{h}"),
        None => format!("/assets/{name}"),
    }
}

/// The htmx file, whatever its pinned version.
pub fn htmx_url() -> String {
    let name = table()
        .hashed
        .keys()
        .find(|k| k.starts_with("vendor/htmx-") && k.ends_with(".min.js"))
        .cloned()
        .unwrap_or_default();
    asset_url(&name)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[handler]
pub fn serve(Path(path): Path<String>) -> Response {
    let (name, immutable) = match table().original.get(&path) {
        Some(orig) => (orig.clone(), true),
        None => (path.clone(), false),
    };
    match Assets::get(&name) {
        Some(file) => Response::builder()
            .header(header::CONTENT_TYPE, content_type(&name))
            .header(
                header::CACHE_CONTROL,
                if immutable { "public, max-age=31536000, immutable" } else { "public, max-age=300" },
            )
            .body(file.data.into_owned()),
        None => Response::builder().status(StatusCode::NOT_FOUND).body("not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_gets_a_hashed_url() {
        let css = asset_url("app.css");
        assert!(css.starts_with("/assets/app.") && css.ends_with(".css") && css.len() > "/assets/app.css".len());
        assert!(htmx_url().contains("vendor/htmx-2."), "{}", htmx_url());
    }
}
