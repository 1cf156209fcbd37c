//! `memleak-exporter`: memory-leak signals for Prometheus.

use memleak_exporter::{cli, ingest, logging, server, web_config, webhook};

use std::io::Write;
use std::process::ExitCode;

// The exporter runs on jemalloc with profiling compiled in, so its own heap
// profile is served at /debug/pprof/heap: a leak in the exporter can be found
// with the exporter. Sampling every 512 KiB on average keeps the cost negligible.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(not(target_env = "msvc"))]
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8] = b"prof:true,prof_active:true,lg_prof_sample:19\0";

fn main() -> ExitCode {
    let invocation = match cli::parse() {
        Ok(invocation) => invocation,
        Err(err) => {
            // Written, not printed: a closed or broken stderr is no reason to panic.
            let _ = writeln!(std::io::stderr(), "memleak-exporter: {err:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(cli::Subcommand::Ingest(args)) = &invocation.command {
        let failed = ingest::run(args);
        return if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let settings = invocation.settings;
    if invocation.check_only {
        // What start-up reads besides the flags: a check that passes must not fail at start.
        let web = match settings.web.config_file.as_deref().map(web_config::WebConfig::load).transpose() {
            Ok(web) => web,
            Err(err) => {
                let _ = writeln!(std::io::stderr(), "memleak-exporter: {err:#}");
                return ExitCode::from(2);
            }
        };
        let access =
            webhook::Access::from_settings(settings.webhook.token_file.as_deref(), settings.web.listen, web.as_ref());
        if let Err(err) = access {
            let _ = writeln!(std::io::stderr(), "memleak-exporter: {err:#}");
            return ExitCode::from(2);
        }
        let warnings = memleak_exporter::preflight::warnings(&settings);
        let verdict = match warnings.len() {
            0 => "configuration is valid".to_owned(),
            n => format!("configuration is valid, with {n} warning(s) on stderr: it starts without what they name"),
        };
        let mut summary = settings.summary();
        if let Some(web) = &web {
            summary.push_str(&format!("\nweb config: {}", web.describe()));
        }
        let _ = writeln!(std::io::stdout(), "memleak-exporter: {verdict}\n{summary}");
        for warning in warnings {
            let _ = writeln!(std::io::stderr(), "memleak-exporter: warning: {warning}");
        }
        return ExitCode::SUCCESS;
    }
    logging::init(&settings.log);
    let code = match server::run(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "memleak-exporter stopped");
            ExitCode::FAILURE
        }
    };
    logging::flush();
    code
}
