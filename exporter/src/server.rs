//! The HTTP server's routes: `/metrics`, health, readiness, the landing page,
//! the exporter's own heap profile and the collectors' profiles, the webhook
//! and the captures API; connections and their limits are `http`'s.

use crate::capture::api::{self, Api};
use crate::capture::target::Resolver;
use crate::capture::{Captures, poller};
use crate::cli::Settings;
use crate::collectors::{self, COLLECTORS};
use crate::heap_profile;
use crate::http::refusals::Refusals;
use crate::http::{self, Limits};
use crate::latest_profiles::LatestProfiles;
use crate::scrape::Scraper;
use crate::self_metrics::Counters;
use crate::web_config::{Source, WebConfig};
use crate::webhook::{self, Access, Webhook};
use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use memleak_signals::ServedProfile;
use memleak_signals::encode::{self, Format};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone)]
struct AppState {
    scraper: Arc<Scraper>,
    /// The profiles of the enabled collectors that make one, by collector id.
    profiles: Arc<BTreeMap<&'static str, Arc<dyn ServedProfile>>>,
    /// The latest ingested profiles, for Parca and Alloy to scrape.
    latest: Arc<LatestProfiles>,
    /// Where the metrics are served (`--web.telemetry-path`).
    telemetry_path: Arc<str>,
}

pub fn run(settings: Settings) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Scrapes run on blocking threads; a few suffice for concurrent scrapers.
        .max_blocking_threads(4)
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(serve(settings));
    // A scrape still running on a blocking thread must not hold the exit past the shutdown deadline.
    runtime.shutdown_background();
    served
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let signals = crate::unix_signals::install().context("installing the signal handlers")?;
    let Settings { web, webhook, capture, alertmanager, process, ingest, roots, collectors, otlp, .. } = settings;
    let web_config = match &web.config_file {
        Some(path) => Some((path.clone(), WebConfig::load(path)?)),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(web.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e}; is another exporter running there? choose another address with --web.listen-address",
            web.listen
        )
    })?;
    let counters = Arc::new(Counters::default());
    let port = listener.local_addr().map_or(web.listen.port(), |a| a.port());
    let sink = otlp.as_ref().map(|o| crate::otlp::OtlpSink::start(o, port, &counters)).transpose()?;
    let mut built = collectors::build(collectors, &roots)?;
    let latest = Arc::new(LatestProfiles::default());
    if let Some(ingest) = ingest {
        let collector =
            crate::watch::start(ingest, sink.clone(), Arc::clone(&latest)).context("starting the ingest watcher")?;
        built.collectors.push(Box::new(collector));
    }
    let scraper = Arc::new(Scraper::new(built.collectors, web.scrape_timeout, Arc::clone(&counters)));
    let access = Arc::new(Access::from_settings(
        webhook.token_file.as_deref(),
        web.listen,
        web_config.as_ref().map(|(_, loaded)| loaded),
    )?);
    let web_described = web_config.as_ref().map_or_else(|| "plain HTTP".to_owned(), |(_, loaded)| loaded.describe());
    let web_authenticates = web_config.as_ref().is_some_and(|(_, loaded)| loaded.authenticates());
    let web_config = web_config.map(|(path, loaded)| Arc::new(Source::new(&path, loaded)));
    // The bound address: with port 0 the kernel picked one, and this line says which.
    let address = listener.local_addr().map_or_else(|_| web.listen.to_string(), |a| a.to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        address = %address,
        collectors = scraper.ids().join(","),
        procfs = %roots.procfs.display(),
        cgroupfs = %roots.cgroupfs.display(),
        webhook = access.describe(),
        web = web_described,
        "memleak-exporter listening"
    );
    if matches!(*access, Access::WebConfigOnly) && !web_authenticates {
        tracing::warn!(
            "POST /api/v1/alerts refuses every request: set --webhook.token-file, basic_auth_users or \
             RequireAndVerifyClientCert in --web.config.file, or listen on loopback only"
        );
    }
    let resolver = Resolver { procfs: roots.procfs.clone(), cgroupfs: roots.cgroupfs.clone(), process };
    let listen = listener.local_addr().unwrap_or(web.listen);
    let captures = Arc::new(Captures::new(capture, listen, resolver, Arc::clone(&counters)));
    if let (Ok(scheduler), Some(sink)) = (&captures.scheduler, &sink) {
        scheduler.ship_to(sink.clone());
    }
    match &captures.scheduler {
        Ok(s) => {
            tracing::info!(spool = %s.spool().shown().display(), instance = captures.host.describe(), "captures on")
        }
        Err(why) => tracing::warn!("{why}"),
    }
    if let (Some(sink), Some(otlp)) = (&sink, &otlp) {
        sink.push_metrics_every(otlp.interval, Arc::clone(&scraper), web.scrape_timeout);
        crate::otlp::events::start(sink, &scraper, &roots);
        sink.push_collector_profiles_every(otlp.interval, crate::otlp::collector_profiles::of(&built.profiles));
        let shown = |url: &str| crate::options::otlp::redacted_url(url);
        tracing::info!(metrics = shown(&otlp.metrics.url), logs = shown(&otlp.logs.url), profiles = shown(&otlp.profiles.url), interval = ?otlp.interval, "pushing over OTLP");
    }
    // The start-up probe runs beside serving: a collector slow to start (eBPF naming the frames of
    // its first samples) must not hold up /-/ready; a scrape meanwhile waits for that collector.
    // It starts after the OTLP push so that the problems it finds are pushed as logs too.
    let probing = Arc::clone(&scraper);
    let budget = web.scrape_timeout;
    drop(tokio::task::spawn_blocking(move || probing.probe(budget)));
    let hook = Webhook {
        access: Arc::clone(&access),
        counters: Arc::clone(&counters),
        captures: Arc::clone(&captures),
        max_body_bytes: webhook.max_body_bytes,
    };
    if let Some(config) = alertmanager {
        let peers: Vec<String> = config.urls.iter().map(ToString::to_string).collect();
        poller::start(config, hook.clone()).context("starting the Alertmanager poller")?;
        tracing::info!(alertmanager = peers.join(","), "polling Alertmanager for capture alerts");
    }
    let telemetry_path = Arc::from(web.telemetry_path.as_str());
    let state = AppState { scraper, profiles: Arc::new(built.profiles), latest, telemetry_path };
    let app = router(state, hook, Api { access, captures: Arc::clone(&captures) }, webhook.max_body_bytes);
    let refusals = Arc::new(Refusals::new(Arc::clone(&counters)));
    http::serve(listener, app, Limits::from_config(&web), web_config, refusals, signals.shutdown()).await;
    captures.stop();
    tracing::info!("memleak-exporter stopped");
    Ok(())
}

fn router(state: AppState, hook: Webhook, captures: Api, max_body_bytes: usize) -> Router {
    let webhook = Router::new()
        .route("/api/v1/alerts", post(webhook::receive))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(hook);
    let captures = Router::new()
        .route("/api/v1/captures", get(api::list))
        .route("/api/v1/captures/{id}", get(api::one))
        .route("/api/v1/captures/{id}/{file}", get(api::file))
        .with_state(captures);
    let telemetry_path = Arc::clone(&state.telemetry_path);
    Router::new()
        .route("/", get(landing))
        .route(&telemetry_path, get(metrics))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "Ready\n" }))
        .route("/debug/pprof/heap", get(heap))
        .route("/debug/pprof/{name}", get(collector_profile))
        .route("/ingested/debug/pprof/allocs", get(latest_any))
        .route("/ingested/{format}/debug/pprof/allocs", get(latest_of_format))
        .with_state(state)
        .merge(webhook)
        .merge(captures)
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let scraper = Arc::clone(&state.scraper);
    let budget = scraper.budget(crate::headers::scrape_timeout(&headers));
    match tokio::task::spawn_blocking(move || encode::encode(&scraper.scrape_shared(budget), format)).await {
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

/// A collector's profile (pprof), e.g. `/debug/pprof/page_faults` with `--collector.page_faults`.
async fn collector_profile(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(profile) = state.profiles.get(name.as_str()).cloned() else {
        let enabled = state.scraper.ids();
        let why = match COLLECTORS.iter().find(|e| e.spec().id == name) {
            Some(_) if enabled.contains(&name.as_str()) => format!("the {name} collector serves no profile"),
            Some(_) => format!("the {name} profile comes from the {name} collector: start with --collector.{name}"),
            None => "no such profile: /debug/pprof/heap is the exporter's own; collectors serve theirs under their id"
                .to_owned(),
        };
        return (StatusCode::NOT_FOUND, format!("{why}\n")).into_response();
    };
    // Rendering may read the modules' ELF files: off the async threads.
    match tokio::task::spawn_blocking(move || profile.pprof()).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("building the profile failed: {e}\n")).into_response(),
    }
}

/// The latest ingested profile (pprof), for profilers whose `path_prefix` is `/ingested`.
async fn latest_any(State(state): State<AppState>) -> Response {
    served_latest(state.latest.get(None), "no profile ingested yet: watched folders are set with --ingest.dir")
}

/// The latest ingested profile of one format, e.g. `/ingested/jemalloc/debug/pprof/allocs`.
async fn latest_of_format(State(state): State<AppState>, Path(format): Path<String>) -> Response {
    if !memleak_artifacts::FORMATS.iter().any(|f| f.id == format) {
        let known: Vec<&str> = memleak_artifacts::FORMATS.iter().map(|f| f.id).collect();
        return (StatusCode::NOT_FOUND, format!("no such format; known: {}\n", known.join(", "))).into_response();
    }
    served_latest(state.latest.get(Some(&format)), "no profile of this format ingested yet")
}

fn served_latest(profile: Option<Arc<Vec<u8>>>, why: &str) -> Response {
    match profile {
        Some(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes.as_ref().clone()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("{why}\n")).into_response(),
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let enabled = state.scraper.ids();
    let rows: String = COLLECTORS
        .iter()
        .map(|e| {
            let s = e.spec();
            let on = if enabled.contains(&s.id) { "enabled" } else { "disabled" };
            format!("<tr><td><code>{}</code></td><td>{on}</td><td>{}</td></tr>\n", s.id, s.about)
        })
        .collect();
    let profiles: String = state
        .profiles
        .keys()
        .map(|id| {
            format!(
                "<li><a href=\"/debug/pprof/{id}\">/debug/pprof/{id}</a>: the {id} collector's profile (pprof)</li>\n"
            )
        })
        .collect();
    Html(format!(
        "<!doctype html>\n<html><head><title>memleak-exporter</title></head><body>\n\
         <h1>memleak-exporter {version}</h1>\n<p>Memory-leak signals for Prometheus.</p>\n\
         <h2>Endpoints</h2>\n<ul>\n\
         <li><a href=\"{telemetry}\">{telemetry}</a>: Prometheus text or OpenMetrics (by Accept header)</li>\n\
         <li><a href=\"/-/healthy\">/-/healthy</a>, <a href=\"/-/ready\">/-/ready</a>: health and readiness</li>\n\
         <li><a href=\"/debug/pprof/heap\">/debug/pprof/heap</a>: the exporter's own heap profile (pprof)</li>\n\
         {profiles}\
         <li>/ingested/debug/pprof/allocs, /ingested/FORMAT/debug/pprof/allocs: the latest ingested profile (pprof), for Parca and Grafana Alloy</li>\n\
         <li>POST /api/v1/alerts: Alertmanager webhook (version 4) that asks for captures</li>\n\
         <li><a href=\"/api/v1/captures\">/api/v1/captures</a>: captures (JSON; each at /api/v1/captures/ID, \
         with ID/profile.pb.gz, ID/flamegraph.svg, ID/folded; the webhook's token)</li>\n\
         </ul>\n<h2>Collectors</h2>\n<table>\n<tr><th>collector</th><th>state</th><th>what</th></tr>\n{rows}</table>\n\
         </body></html>\n",
        version = env!("CARGO_PKG_VERSION"),
        telemetry = state.telemetry_path,
    ))
}
