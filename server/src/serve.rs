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
    use tracing_subscriber::filter::{FilterExt, dynamic_filter_fn};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{EnvFilter, fmt};

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                // Asked at every event of actix-http's connection errors only (a plain
                // `filter_fn` is cached per callsite).
                .with_filter(
                    filter.and(
                        dynamic_filter_fn(|meta, _| {
                            !is_connection_error(meta.target(), *meta.level())
                                || CONNECTION_ERRORS.allow(unix_seconds())
                        })
                        .with_callsite_filter(|meta| {
                            if is_connection_error(meta.target(), *meta.level()) {
                                tracing::subscriber::Interest::sometimes()
                            } else {
                                tracing::subscriber::Interest::always()
                            }
                        }),
                    ),
                ),
        )
        .try_init();
}

/// actix-http logs every malformed request (`stream error: request parse error: ...`) at
/// ERROR from its connection dispatcher, so any client could fill the log at will. Those
/// lines pass at most once per [`ConnectionErrorLimit::PERIOD_SECONDS`]; the client gets
/// its 400 either way.
fn is_connection_error(target: &str, level: tracing::Level) -> bool {
    level == tracing::Level::ERROR && target.starts_with("actix_http::h1")
}

static CONNECTION_ERRORS: ConnectionErrorLimit = ConnectionErrorLimit::new();

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// At most one event per period, across threads.
struct ConnectionErrorLimit {
    /// The second of the last event let through, plus one (0: none yet).
    last: std::sync::atomic::AtomicU64,
}

impl ConnectionErrorLimit {
    const PERIOD_SECONDS: u64 = 10;

    const fn new() -> Self {
        ConnectionErrorLimit {
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Whether an event at `now` (seconds) may be logged.
    fn allow(&self, now: u64) -> bool {
        use std::sync::atomic::Ordering;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last - 1 + Self::PERIOD_SECONDS {
            return false;
        }
        self.last
            .compare_exchange(last, now + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_pass_once_per_period() {
        let limit = ConnectionErrorLimit::new();
        assert!(limit.allow(1000));
        assert!(!limit.allow(1000));
        assert!(!limit.allow(1009));
        assert!(limit.allow(1010));
        assert!(!limit.allow(1011));
        assert!(is_connection_error(
            "actix_http::h1::dispatcher",
            tracing::Level::ERROR
        ));
        assert!(!is_connection_error(
            "actix_http::h1::dispatcher",
            tracing::Level::WARN
        ));
        assert!(!is_connection_error(
            "execution_api_server::app",
            tracing::Level::ERROR
        ));
    }
}
