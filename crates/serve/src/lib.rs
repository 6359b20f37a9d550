//! # mmgen-serve
//!
//! The content studio: `mmgen serve`, an HTTP API over the pipeline and a web page.
//!
//! - [`api::router`]: the routes (jobs, OpenAI-style images, progress events,
//!   sessions of turns, feedback, files, health, the OpenAPI document, the page);
//! - [`studio`]: the bounded queue, the worker threads that run the models (never on
//!   the async runtime), each live job's progress, events and cancellation flag;
//! - [`store`]: jobs, sessions and feedback in SQLite, recovered after a crash;
//! - [`generator`]: what a worker runs, the pipeline over the shipped models.

#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod generator;
pub mod jobs;
pub mod store;
pub mod studio;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::router;
pub use generator::{Generate, PipelineGenerator};
pub use studio::{AppState, Config, Studio};

/// Serves the studio on `addr` until Ctrl-C (or SIGTERM): prints the address it
/// listens on (port 0 picks a free one) on stdout, then runs.
pub fn serve(addr: SocketAddr, config: Config, generator: Arc<dyn Generate>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let state = Studio::start(config, generator)?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("--addr {addr}: cannot listen there: {e}"))?;
        let bound = listener.local_addr().map_err(|e| e.to_string())?;
        println!("mmgen serve: listening on http://{bound}");
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown())
            .await
            .map_err(|e| format!("the server stopped: {e}"))
    })
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = interrupt => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
