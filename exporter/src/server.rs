//! The HTTP server: `/metrics`, health, readiness, the landing page and the
//! exporter's own heap profile.

use crate::cli::Settings;
use crate::collectors;
use crate::heap_profile;
use crate::scrape::Scraper;
use crate::self_metrics::Counters;
use crate::webhook::{self, Access, Webhook};
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use memleak_signals::encode::{self, Format};
use memleak_signals::registry;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
struct AppState {
    scraper: Arc<Scraper>,
    /// The page-fault stack profile and the cgroup fs that names its cgroups.
    fault_profile: Option<(memleak_bpf::FaultProfile, std::path::PathBuf)>,
}

pub fn run(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Scrapes run on blocking threads; a few suffice for concurrent scrapers.
        .max_blocking_threads(4)
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(settings))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let built = collectors::build(&settings)?;
    let fault_profile = built.fault_profile.map(|p| (p, settings.roots.cgroupfs.clone()));
    let counters = Arc::new(Counters::default());
    let scraper = Arc::new(Scraper::new(built.collectors, settings.scrape_timeout, Arc::clone(&counters)));
    let access = Arc::new(Access::from_settings(settings.webhook_token_file.as_deref(), settings.listen)?);
    let listener = tokio::net::TcpListener::bind(settings.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; is another exporter running there? choose another address with --web.listen-address",
            settings.listen
        )
    })?;
    // The bound address: with port 0 the kernel picked one, and this line says which.
    let address = listener.local_addr().map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        address = %address,
        collectors = scraper.ids().join(","),
        procfs = %settings.roots.procfs.display(),
        cgroupfs = %settings.roots.cgroupfs.display(),
        webhook = access.describe(),
        "memleak-exporter listening"
    );
    if matches!(*access, Access::Disabled) {
        tracing::warn!(
            "POST /api/v1/alerts refuses every request: set --webhook.token-file, or listen on loopback only"
        );
    }
    let hook = Webhook { access, counters };
    let app = router(AppState { scraper, fault_profile }, hook, settings.webhook_max_body_bytes);
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await.context("serving HTTP")?;
    tracing::info!("memleak-exporter stopped");
    Ok(())
}

fn router(state: AppState, hook: Webhook, max_body_bytes: usize) -> Router {
    let webhook = Router::new()
        .route("/api/v1/alerts", post(webhook::receive))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(hook);
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/debug/pprof/heap", get(heap))
        .route("/debug/pprof/page_faults", get(page_faults))
        .with_state(state)
        .merge(webhook)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!(signal = "SIGINT", "shutting down"),
        () = terminate => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let announced = headers
        .get("X-Prometheus-Scrape-Timeout-Seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64);
    let scraper = Arc::clone(&state.scraper);
    let budget = scraper.budget(announced);
    match tokio::task::spawn_blocking(move || encode::encode(&scraper.scrape(budget), format)).await {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "scrape task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "scrape failed; see the exporter's log\n").into_response()
        }
    }
}

async fn heap() -> Response {
    match heap_profile::dump().await {
        Ok(profile) => ([(header::CONTENT_TYPE, "application/octet-stream")], profile).into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
    }
}

/// Where the watched programs' page faults come from (pprof), when `page_faults` is on.
async fn page_faults(State(state): State<AppState>) -> Response {
    let Some((profile, cgroupfs)) = state.fault_profile else {
        return (
            StatusCode::NOT_FOUND,
            "the page-fault profile comes from the page_faults collector: start with --collector.page_faults\n",
        )
            .into_response();
    };
    // Symbolizing reads the modules' ELF files: off the async threads.
    match tokio::task::spawn_blocking(move || profile.pprof(&cgroupfs)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("building the profile failed: {e}\n")).into_response(),
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let enabled = state.scraper.ids();
    let rows: String = registry::SIGNALS
        .iter()
        .filter(|s| s.roles.collector)
        .map(|s| {
            let on = if enabled.contains(&s.id) { "enabled" } else { "disabled" };
            format!("<tr><td><code>{}</code></td><td>{on}</td><td>{}</td></tr>\n", s.id, s.description)
        })
        .collect();
    Html(format!(
        "<!doctype html>\n<html><head><title>memleak-exporter</title></head><body>\n\
         <h1>memleak-exporter {version}</h1>\n<p>Memory-leak signals for Prometheus.</p>\n\
         <h2>Endpoints</h2>\n<ul>\n\
         <li><a href=\"/metrics\">/metrics</a>: Prometheus text or OpenMetrics (by Accept header)</li>\n\
         <li><a href=\"/-/healthy\">/-/healthy</a>, <a href=\"/-/ready\">/-/ready</a>: health and readiness</li>\n\
         <li><a href=\"/debug/pprof/heap\">/debug/pprof/heap</a>: the exporter's own heap profile (pprof)</li>\n\
         <li><a href=\"/debug/pprof/page_faults\">/debug/pprof/page_faults</a>: user stacks of sampled page faults (pprof; with --collector.page_faults)</li>\n\
         <li>POST /api/v1/alerts: Alertmanager webhook (version 4) that asks for captures</li>\n\
         </ul>\n<h2>Signals</h2>\n<table>\n<tr><th>signal</th><th>state</th><th>what</th></tr>\n{rows}</table>\n\
         </body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
    ))
}
