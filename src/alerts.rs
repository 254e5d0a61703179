//! Alerts for the operator: always an error line in the log, and a Slack message when an
//! incoming webhook is configured (`alerts.slack_webhook_url`).

use crate::App;

/// Reports `subject` with `detail`. Never fails: an alert that cannot be delivered is logged.
pub async fn send(app: &App, subject: &str, detail: &str) {
    tracing::error!(alert = %subject, detail = %detail, "alert");
    let Some(url) = app.config.alerts.slack_webhook_url.as_ref() else { return };
    let text = format!(":warning: *{subject}*\n{detail}");
    let body = serde_json::json!({ "text": text });
    match app.http().post(url.expose()).json(&body).send().await {
        Ok(r) if r.status().is_success() => {}
        // The webhook URL is a secret: only the status goes to the log.
        Ok(r) => tracing::error!(status = r.status().as_u16(), "the Slack alert webhook refused the alert"),
        Err(e) => tracing::error!(error = %e.without_url(), "the Slack alert webhook is unreachable"),
    }
}
