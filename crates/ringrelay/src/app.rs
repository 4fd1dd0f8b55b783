//! The one assembly point: [`Application::build`] opens what the settings name, binds the
//! listener (port 0 allowed) and exposes [`Application::port`] and
//! [`Application::run_until_stopped`].

use std::path::Path;

use anyhow::Context as _;
use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::config::{self, Settings};
use crate::shutdown::CancellationToken;
use crate::telemetry;

/// A built, bound, not yet running ringrelay.
pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    /// Binds the listener and assembles the HTTP surface.
    ///
    /// # Errors
    /// When the listen address cannot be bound.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.server.listen))?;
        Ok(Self {
            listener,
            router: router(),
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .context("HTTP server failed")
    }
}

/// The HTTP surface.
pub fn router() -> Router {
    Router::new().route("/healthz", get(|| async { "ok" }))
}

/// `ringrelay serve`: load the config, start telemetry, build and run until a signal.
///
/// # Errors
/// Config problems, or a failure to start.
pub async fn serve_from_file(path: &Path) -> anyhow::Result<()> {
    let settings = config::load_file(path)?;
    telemetry::init(settings.log.format, &settings.log.level);
    let app = Application::build(settings).await?;
    tracing::info!(port = app.port(), "ringrelay listening");
    app.run_until_stopped(crate::shutdown::on_signals()).await
}
