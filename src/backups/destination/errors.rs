//! Errors of destinations: `object_store`'s errors turned into messages that say what went wrong
//! and where, built from the HTTP status, the storage's error code and the failing address, with
//! every configured secret scrubbed.

use std::path::PathBuf;
use std::sync::Arc;

use super::EXTENSION;

/// Why a destination could not be used. Messages name the destination by its redacted URL
/// and never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("{0}")]
    InvalidUrl(String),
    #[error("{0}")]
    Config(String),
    #[error("{0:?} is not a backup file name (bravely-….{EXTENSION})")]
    InvalidName(String),
    #[error("the storage refused the credentials ({detail}) at {at}; check the access key and secret")]
    Refused { at: String, detail: String },
    #[error("the bucket {bucket:?} does not exist at {at}")]
    NoBucket { bucket: String, at: String },
    #[error("cannot reach the storage at {at}: {detail}")]
    Unreachable { at: String, detail: String },
    #[error("no backup named {name} at {at}")]
    NotFound { name: String, at: String },
    #[error("{what} {}: {source}", path.display())]
    Local { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("the storage at {at} failed: {detail}")]
    Storage { at: String, detail: String },
}

/// For streaming bodies (`poem::Body::from_bytes_stream` wants `Into<std::io::Error>`).
impl From<DestinationError> for std::io::Error {
    fn from(e: DestinationError) -> Self {
        let kind = match &e {
            DestinationError::NotFound { .. } => std::io::ErrorKind::NotFound,
            DestinationError::Refused { .. } => std::io::ErrorKind::PermissionDenied,
            DestinationError::Unreachable { .. } => std::io::ErrorKind::NotConnected,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// Turns `object_store` errors into [`DestinationError`]s for one destination.
#[derive(Clone)]
pub(super) struct Errors {
    /// The redacted URL, plus the endpoint when one is configured.
    pub(super) at: String,
    pub(super) bucket: Option<String>,
    pub(super) secrets: Arc<Vec<String>>,
}

/// Replaces every configured secret in `text`.
pub(super) fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), "[redacted]");
    }
    out
}

/// `<Code>X</Code>` (S3, Azure) or `"reason": "X"` / `"status": "X"` (GCS) from an error body.
fn error_code(text: &str) -> Option<String> {
    let pick = |start: &str, end: &str| -> Option<String> {
        let i = text.find(start)? + start.len();
        let rest = &text[i..];
        let code = &rest[..rest.find(end)?];
        let ok = !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| code.to_string())
    };
    pick("<Code>", "</Code>").or_else(|| pick("\"reason\": \"", "\"")).or_else(|| pick("\"status\": \"", "\""))
}

/// The HTTP status in object_store's message (`... status code: 403 Forbidden ...`).
fn status_text(text: &str) -> Option<String> {
    let i = text.find("status code: ")? + "status code: ".len();
    let rest = &text[i..];
    let code = rest.get(..3)?;
    code.bytes().all(|b| b.is_ascii_digit()).then(|| {
        let reason: String =
            rest[3..].trim_start().chars().take_while(|c| c.is_ascii_alphabetic() || *c == ' ').collect();
        let reason = reason.trim();
        if reason.is_empty() { code.to_string() } else { format!("{code} {reason}") }
    })
}

/// The innermost error's message (for connection failures: "Connection refused (os error 111)").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e;
    while let Some(next) = cur.source() {
        parts.push(next.to_string());
        cur = next;
    }
    parts.join(": ")
}

fn is_connect_error(e: &(dyn std::error::Error + 'static)) -> Option<object_store::client::HttpErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
            return Some(h.kind());
        }
        cur = err.source();
    }
    None
}

/// Whether the chain ends in a dropped connection (the server went away mid-request).
fn connection_lost(e: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind as K;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(io.kind(), K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

const CREDENTIAL_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "InvalidToken",
    "ExpiredToken",
    "AuthenticationFailed",
    "AuthorizationFailure",
    "AuthorizationPermissionMismatch",
    "forbidden",
    "authError",
];

impl Errors {
    pub(super) fn of(&self, e: object_store::Error, name: Option<&str>) -> DestinationError {
        use object_store::Error as E;
        use object_store::client::HttpErrorKind;
        let text = scrub(&chain_text(&e), &self.secrets);
        let code = error_code(&text);
        let status = status_text(&text);
        let described = |fallback: &str| {
            let mut parts: Vec<String> = vec![];
            if let Some(s) = &status {
                parts.push(s.clone());
            } else if !fallback.is_empty() {
                parts.push(fallback.to_string());
            }
            if let Some(c) = &code {
                parts.push(c.clone());
            }
            parts.join(": ")
        };
        let at = self.at.clone();
        let bucket_missing = code.as_deref().is_some_and(|c| {
            matches!(c, "NoSuchBucket" | "ContainerNotFound" | "notFound")
                && (name.is_none() || c != "notFound" || text.contains("bucket"))
        });
        match &e {
            E::PermissionDenied { .. } => DestinationError::Refused { at, detail: described("403 Forbidden") },
            E::Unauthenticated { .. } => DestinationError::Refused { at, detail: described("401 Unauthorized") },
            _ if bucket_missing => DestinationError::NoBucket { bucket: self.bucket.clone().unwrap_or_default(), at },
            E::NotFound { .. } => match name {
                Some(n) => DestinationError::NotFound { name: n.to_string(), at },
                None => DestinationError::Storage { at, detail: "not found".into() },
            },
            _ if code.as_deref().is_some_and(|c| CREDENTIAL_CODES.contains(&c)) => {
                DestinationError::Refused { at, detail: described("") }
            }
            _ => match is_connect_error(&e) {
                // Transport failures: no answer, or the connection dropped before the answer.
                Some(
                    HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted,
                ) => DestinationError::Unreachable { at, detail: scrub(&innermost(&e), &self.secrets) },
                _ if connection_lost(&e) => {
                    DestinationError::Unreachable { at, detail: scrub(&innermost(&e), &self.secrets) }
                }
                _ if status.is_some() || code.is_some() => DestinationError::Storage { at, detail: described("") },
                _ => DestinationError::Storage { at, detail: scrub(&innermost(&e), &self.secrets) },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_give_codes_and_statuses() {
        let text = "Error performing GET http://h/b in 1ms - Server returned non-2xx status code: 403 Forbidden: \
                    <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert_eq!(error_code(text).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(status_text(text).as_deref(), Some("403 Forbidden"));
        assert_eq!(scrub("key=hunter22 x", &["hunter22".into()]), "key=[redacted] x");
    }
}
