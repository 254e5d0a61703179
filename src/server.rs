//! Serving HTTP with restarts that lose no request.
//!
//! On the stop signal the server first stops *accepting*: connections that arrive from then on
//! wait in the kernel's queue of the listening socket, which under socket activation outlives
//! this process and is served by the next one. Responses sent from then on carry
//! `Connection: close`, so keep-alive clients reconnect (to the next process). After
//! [`SETTLE`] — time for clients whose connection was already accepted to send their request —
//! poem's graceful shutdown closes idle connections and gives requests in flight up to
//! [`GRACE`].
//!
//! Without the settle step, a connection accepted just before the signal but whose request had
//! not arrived yet would be closed unanswered (hyper treats it as idle): the restart test caught
//! exactly that.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::sync::watch;

use crate::App;

/// How long accepted connections get to deliver their request before idle ones are closed.
pub const SETTLE: Duration = Duration::from_millis(500);
/// How long requests in flight get to finish after that.
pub const GRACE: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `signal` completes, then drains as described above.
pub async fn run(
    app: App,
    listener: std::net::TcpListener,
    signal: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let acceptor = StopAccepting { inner: TcpAcceptor::from_std(listener)?, stop: stop_rx };
    let endpoint = app.endpoint();
    let shutdown = async move {
        signal.await;
        app.draining.store(true, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        tokio::time::sleep(SETTLE).await;
    };
    poem::Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(endpoint, shutdown, Some(GRACE)).await
}

/// A TCP acceptor that stops taking connections once told to, leaving them to the kernel queue.
struct StopAccepting {
    inner: TcpAcceptor,
    stop: watch::Receiver<bool>,
}

impl Acceptor for StopAccepting {
    type Io = <TcpAcceptor as Acceptor>::Io;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        if !*self.stop.borrow() {
            tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => {}
                accepted = self.inner.accept() => return accepted,
            }
        }
        std::future::pending().await
    }
}

/// A restart the application asks for (a restore from the web page): the server drains as on
/// a stop signal, and `bravely serve` then re-executes itself on the same listening socket.
#[derive(Default)]
pub struct Restarter {
    available: std::sync::atomic::AtomicBool,
    requested: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

impl Restarter {
    /// Called by `bravely serve`, which knows how to restart; elsewhere (tests serving the app
    /// in-process) a restart cannot happen and features needing one say so.
    pub fn enable(&self) {
        self.available.store(true, Ordering::SeqCst);
    }
    pub fn available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
    /// Completes when a restart is requested.
    pub async fn wait(&self) {
        self.notify.notified().await;
    }
}
