//! TLS for outgoing requests (Slack, OpenID Connect, object stores, Sentry): rustls with ring as
//! the one crypto provider. reqwest is built without a provider of its own and panics when it
//! builds a client before one is installed, so `main` and `App::open` install it first.

/// Installs ring as the process's rustls provider. Safe to call more than once (tests open many
/// apps in one process): only the first call does anything.
pub fn install() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed it in between, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
