//! The HTTP client `openidconnect` calls: a closure over our reqwest (rustls), so the binary
//! carries one HTTP stack. Redirects are not followed (as oauth2 advises: a redirecting
//! provider could otherwise point the server at internal addresses), and answers are capped.

use std::future::Future;

use openidconnect::{HttpRequest, HttpResponse};

/// Discovery documents, key sets and token responses are a few kilobytes.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

/// A reqwest client for OpenID providers: the shared settings, without redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("bravely/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

/// The closure `openidconnect` takes as its HTTP client.
pub fn closure(
    client: &reqwest::Client,
) -> impl Fn(HttpRequest) -> std::pin::Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> + use<> {
    let client = client.clone();
    move |req: HttpRequest| {
        let client = client.clone();
        Box::pin(async move { send(&client, req).await })
    }
}

async fn send(client: &reqwest::Client, req: HttpRequest) -> Result<HttpResponse, HttpError> {
    let (parts, body) = req.into_parts();
    let url = parts.uri.to_string();
    let mut resp = client
        .request(parts.method, &url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        // Without the URL's query: reqwest's message names the URL, and these carry none we keep.
        .map_err(|e| HttpError(format!("cannot reach {}: {}", without_query(&url), e.without_url())))?;
    let mut out = HttpResponse::new(Vec::new());
    *out.status_mut() = resp.status();
    *out.headers_mut() = std::mem::take(resp.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpError(format!("reading the answer of {}: {}", without_query(&url), e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpError(format!("the answer of {} is larger than {MAX_BODY} bytes", without_query(&url))));
        }
        body.extend_from_slice(&chunk);
    }
    *out.body_mut() = body;
    Ok(out)
}

fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}
