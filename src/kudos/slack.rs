//! Slack's side: request signatures, slash-command payloads, the `/thanks` text, replies.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Requests older (or newer) than this are refused, as Slack recommends.
pub const MAX_AGE_SECS: i64 = 5 * 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Slack-Signature or X-Slack-Request-Timestamp header is missing")]
    Missing,
    #[error("the request timestamp is not a number")]
    BadTimestamp,
    #[error("the request is more than five minutes old (or in the future)")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a request exactly as Slack specifies, comparing in constant time.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    sig: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(ts), Some(sig)) = (timestamp, sig) else { return Err(SignatureError::Missing) };
    let t: i64 = ts.trim().parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now.timestamp() - t).abs() > MAX_AGE_SECS {
        return Err(SignatureError::Stale);
    }
    let expected = signature(secret, ts.trim(), body);
    use subtle::ConstantTimeEq;
    if expected.as_bytes().ct_eq(sig.trim().as_bytes()).into() { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// What identifies one signed request: a digest of its timestamp and signature (which covers
/// the body). A replay within the five minutes [`verify`] allows has the same key, so the
/// thanks it asks for are stored once; kept in the thanks' unique key, it outlives the window.
pub fn request_key(timestamp: &str, signature: &str) -> String {
    use sha2::Digest;
    let digest = Sha256::digest(format!("{}:{}", timestamp.trim(), signature.trim()).as_bytes());
    hex::encode(&digest[..16])
}

/// The fields of a slash-command request that we use.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct SlashCommand {
    #[serde(default)]
    pub team_id: String,
    #[serde(default)]
    pub channel_id: String,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub response_url: String,
    #[serde(default)]
    pub trigger_id: String,
}

pub fn valid_user_id(id: &str) -> bool {
    id.len() >= 3
        && id.len() <= 24
        && id.starts_with(['U', 'W', 'B'])
        && id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// What `/thanks …` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Help,
    Leaderboard,
    Me,
    Thank { people: Vec<Mention>, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub id: String,
    pub name: String,
}

/// Why a `/thanks` text could not be understood; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("Say who to thank and why, e.g. `/thanks @ana for the release notes`.")]
    Empty,
    #[error(
        "Mention the people to thank with @, e.g. `/thanks @ana for the review`. (If you did, ask the Slack admin to turn on “Escape channels, users, and links” for this command.)"
    )]
    NoMentions,
    #[error("Add a reason after the names, e.g. `/thanks @ana for the review`.")]
    NoReason,
    #[error("{0:?} is not a person Slack knows.")]
    BadMention(String),
}

/// Parses escaped mentions (`<@U024BE7LH|ana>`), then the reason ("for …" optional).
pub fn parse(text: &str) -> Result<Request, ParseError> {
    let t = text.trim();
    match t.to_lowercase().as_str() {
        "" => return Err(ParseError::Empty),
        "help" | "?" => return Ok(Request::Help),
        "leaderboard" | "top" | "board" => return Ok(Request::Leaderboard),
        "me" | "points" | "score" => return Ok(Request::Me),
        _ => {}
    }
    let mut rest = t;
    let mut people: Vec<Mention> = Vec::new();
    loop {
        rest = rest.trim_start().trim_start_matches([',', '&']).trim_start();
        let lower = rest.to_lowercase();
        if lower.starts_with("and ") && rest[4..].trim_start().starts_with("<@") {
            rest = rest[4..].trim_start();
        }
        if !rest.starts_with("<@") {
            break;
        }
        let Some(end) = rest.find('>') else { return Err(ParseError::BadMention(rest.to_string())) };
        let inner = &rest[2..end];
        let (id, name) = match inner.split_once('|') {
            Some((id, name)) => (id, name),
            None => (inner, inner),
        };
        if !valid_user_id(id) {
            return Err(ParseError::BadMention(inner.to_string()));
        }
        if !people.iter().any(|p| p.id == id) {
            people.push(Mention { id: id.to_string(), name: name.to_string() });
        }
        rest = &rest[end + 1..];
    }
    if people.is_empty() {
        return Err(ParseError::NoMentions);
    }
    let mut reason = rest.trim();
    if reason.eq_ignore_ascii_case("for") {
        reason = "";
    }
    for prefix in ["for ", "for:", "—", "-", ":"] {
        if reason.to_lowercase().starts_with(prefix) {
            reason = reason[prefix.len()..].trim();
            break;
        }
    }
    if reason.chars().filter(|c| c.is_alphanumeric()).count() < 2 {
        return Err(ParseError::NoReason);
    }
    Ok(Request::Thank { people, reason: reason.chars().take(500).collect() })
}

/// A reply: `in_channel` for everyone to see, `ephemeral` for the person who typed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    pub response_type: String,
    pub text: String,
}

impl Reply {
    pub fn public(text: impl Into<String>) -> Reply {
        Reply { response_type: "in_channel".into(), text: text.into() }
    }
    pub fn private(text: impl Into<String>) -> Reply {
        Reply { response_type: "ephemeral".into(), text: text.into() }
    }
}

pub const HELP: &str = "*/thanks* says thank you where the team can see it.\n\
• `/thanks @ana @ben for shipping the release` thanks one or more people\n\
• `/thanks leaderboard` shows this month's top receivers and givers\n\
• `/thanks me` shows your points\n\
Giving and receiving both earn points.";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ts: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(ts, 0).expect("valid")
    }

    /// The example from Slack's "Verifying requests from Slack" page.
    #[test]
    fn slacks_published_example_verifies() {
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        assert_eq!(signature(secret, "1531420618", body), expected);
        assert_eq!(verify(secret, Some("1531420618"), Some(expected), body, at(1531420618 + 60)), Ok(()));
    }

    #[test]
    fn forged_stale_and_missing_signatures_are_refused() {
        let body = b"text=hi";
        let sig = signature("secret", "1000", body);
        assert_eq!(verify("other", Some("1000"), Some(&sig), body, at(1000)), Err(SignatureError::Mismatch));
        assert_eq!(verify("secret", Some("1000"), Some(&sig), b"text=hI", at(1000)), Err(SignatureError::Mismatch));
        assert_eq!(verify("secret", Some("1000"), Some(&sig), body, at(1000 + 301)), Err(SignatureError::Stale));
        assert_eq!(verify("secret", None, Some(&sig), body, at(1000)), Err(SignatureError::Missing));
        assert_eq!(verify("secret", Some("x"), Some(&sig), body, at(1000)), Err(SignatureError::BadTimestamp));
        assert_eq!(verify("secret", Some("1000"), Some(&sig), body, at(1000 + 299)), Ok(()));
    }

    #[test]
    fn parses_mentions_and_reasons() {
        let r = parse("<@U1AAA|ana> <@U2BBB|ben>, and <@U1AAA|ana> for shipping the release").expect("ok");
        assert_eq!(
            r,
            Request::Thank {
                people: vec![
                    Mention { id: "U1AAA".into(), name: "ana".into() },
                    Mention { id: "U2BBB".into(), name: "ben".into() }
                ],
                reason: "shipping the release".into()
            }
        );
        assert_eq!(parse(" help "), Ok(Request::Help));
        assert_eq!(parse("leaderboard"), Ok(Request::Leaderboard));
        assert_eq!(parse("ME"), Ok(Request::Me));
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("@ana for the review"), Err(ParseError::NoMentions));
        assert_eq!(parse("<@U1AAA|ana>"), Err(ParseError::NoReason));
        assert_eq!(parse("<@U1AAA|ana> for"), Err(ParseError::NoReason));
        assert!(matches!(parse("<@hello> thanks"), Err(ParseError::BadMention(_))));
    }
}
