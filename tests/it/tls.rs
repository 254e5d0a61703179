//! Outgoing TLS goes through rustls with ring, the one crypto provider (`src/tls.rs`): a request
//! to a local TLS server succeeds when its certificate is trusted and is refused when it is not.
//! The certificate in `tests/tls/` is a test fixture (self-signed, for localhost and 127.0.0.1).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CERT: &[u8] = include_bytes!("../tls/server.cert.der");
const KEY: &[u8] = include_bytes!("../tls/server.key.der");

/// Serves `connections` HTTPS connections on 127.0.0.1, answering "hello" to each request.
async fn tls_server(connections: usize) -> (u16, tokio::task::JoinHandle<Vec<bool>>) {
    let certs = vec![rustls::pki_types::CertificateDer::from(CERT.to_vec())];
    let key = rustls::pki_types::PrivateKeyDer::try_from(KEY.to_vec()).expect("key");
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut handshakes = Vec::new();
        for _ in 0..connections {
            let (tcp, _) = listener.accept().await.expect("accept");
            match acceptor.accept(tcp).await {
                Ok(mut tls) => {
                    handshakes.push(true);
                    let mut buf = vec![0; 4096];
                    let n = tls.read(&mut buf).await.expect("read");
                    assert!(buf[..n].starts_with(b"GET /hello "), "{:?}", String::from_utf8_lossy(&buf[..n]));
                    tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello")
                        .await
                        .expect("write");
                    let _ = tls.shutdown().await;
                }
                Err(_) => handshakes.push(false),
            }
        }
        handshakes
    });
    (port, task)
}

#[tokio::test]
async fn outgoing_https_uses_rustls_with_ring_and_checks_the_certificate() {
    bravely::tls::install();
    assert!(rustls::crypto::CryptoProvider::get_default().is_some(), "a provider is installed");
    let (port, server) = tls_server(2).await;
    let url = format!("https://127.0.0.1:{port}/hello");

    let trusting = reqwest::Client::builder()
        .tls_certs_merge([reqwest::Certificate::from_der(CERT).expect("certificate")])
        .build()
        .expect("client");
    let r = trusting.get(&url).send().await.expect("https request to a trusted server");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "hello");

    // The same server without its certificate among the roots: refused during the handshake.
    let plain = reqwest::Client::builder().build().expect("client");
    let err = plain.get(&url).send().await.expect_err("an untrusted certificate is refused");
    assert!(err.is_connect(), "{err:?}");

    assert_eq!(server.await.expect("server"), vec![true, false]);
}
