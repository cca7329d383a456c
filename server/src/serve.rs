//! Running the HTTP server: logging, binding, the startup line, graceful shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use actix_web::{App, HttpServer};

use crate::app::{self, AppState};

/// How long in-flight requests get to finish after SIGTERM/Ctrl-C.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Installs the `tracing` subscriber: human-readable `key=value` lines on stderr, filtered by
/// `RUST_LOG` (default `default_filter`, e.g. `info`). Safe to call once per process.
pub fn init_tracing(default_filter: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Serves the app on `bind` until SIGTERM or Ctrl-C, then drains in-flight requests and closes
/// the database pool.
///
/// Prints `listening on http://ADDR` on stdout once bound (with the real port when `bind` asks
/// for port 0), so scripts and tests can find the server.
pub async fn serve(state: AppState, bind: SocketAddr) -> std::io::Result<()> {
    let store = state.store.clone();
    let server = HttpServer::new(move || App::new().configure(app::configure(state.clone())))
        // Our own signal handling below logs through `tracing` and makes Ctrl-C graceful too.
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
        .bind(bind)?;
    let addrs = server.addrs();
    let server = server.run();

    {
        let mut out = std::io::stdout().lock();
        for addr in &addrs {
            tracing::info!(%addr, "listening");
            writeln!(out, "listening on http://{addr}")?;
        }
        out.flush()?;
    }

    let handle = server.handle();
    actix_web::rt::spawn(async move {
        let signal = shutdown_signal().await;
        tracing::info!(
            signal,
            timeout_secs = SHUTDOWN_TIMEOUT.as_secs(),
            "shutting down gracefully"
        );
        handle.stop(true).await;
    });

    server.await?;
    // In-flight requests are done: close the pool (SQLite checkpoints its WAL on the last close).
    store.close().await;
    tracing::info!("server stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT (Ctrl-C) and names it.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = actix_web::rt::signal::ctrl_c() => "SIGINT",
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = actix_web::rt::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
