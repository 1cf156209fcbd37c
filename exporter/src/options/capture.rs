//! The capture loop's options (`--capture.*`, YAML `capture`): the spool, the
//! scheduler's limits, which alerts name this host, and where allocator
//! profiles may be pulled from.

use crate::capture::allow::Allowlist;
use crate::capture::sources::{self, Source};
use memleak_signals::OptionError;
use memleak_signals::options::at_least_one;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Where the deploy files keep the exporter's state (systemd `StateDirectory=memleak-exporter`).
pub const DEFAULT_DIR: &str = "/var/lib/memleak-exporter/captures";

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Spool folder for capture results, created 0700 [default: /var/lib/memleak-exporter/captures].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Most captures kept in the spool; the oldest finished ones are evicted [default: 50].
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,

    /// Most bytes the spool holds; the oldest finished captures are evicted [default: 268435456].
    #[arg(long, value_name = "BYTES")]
    pub max_spool_bytes: Option<u64>,

    /// Most captures running at once [default: 2].
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,

    /// Longest capture window; a longer capture_duration annotation is cut to it [default: 10m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub max_duration: Option<Duration>,

    /// Time after a capture of a target before that target is captured again [default: 30m].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Option<Duration>,

    /// Most captures started per hour, all targets together [default: 12].
    #[arg(long, value_name = "N")]
    pub max_per_hour: Option<usize>,

    /// A name of this exporter that an alert's `instance` label may carry, besides this host's names and
    /// addresses alone and with the listen port; one without a port also names the node for `node` and
    /// `nodename` labels (e.g. the Kubernetes node name) (repeatable).
    #[arg(long, value_name = "NAME")]
    #[serde(default)]
    pub instance: Vec<String>,

    /// HOST:PORT pattern that pprof URLs must match to be pulled (repeatable): host and port are
    /// matched apart, `*` matches within one DNS label or IPv4 octet (`10.0.0.*:6060`,
    /// `*.svc.cluster.local:6060`, `127.0.0.1:*`); an address pattern is checked against the address
    /// connected to. Without one, no pprof URL is pulled.
    #[arg(long = "pprof.allow", value_name = "PATTERN")]
    #[serde(default)]
    pub pprof_allow: Vec<String>,

    /// URL path pulled besides /debug/pprof/heap and /debug/pprof/allocs (repeatable), e.g. a Rust
    /// service's jemalloc_pprof endpoint.
    #[arg(long = "pprof.path", value_name = "PATH")]
    #[serde(default)]
    pub pprof_path: Vec<String>,

    /// Where a target's allocator profile comes from: `group=NAME` or `cgroup=PATH`, then
    /// `pprof_url=URL`, or `heap_profile=PREFIX` (gperftools HEAPPROFILE, dumped on `signal=N`,
    /// default 12) or `jemalloc_prefix=PREFIX` (jemalloc prof_prefix dumps), comma-separated (repeatable).
    #[arg(long = "target", value_name = "MAPPING")]
    #[serde(default)]
    pub targets: Vec<String>,

    /// Longest pause of a target for a reachability scan (sampler captures with the annotation
    /// reachability: "true"); a scan not done by then is abandoned and the target resumed [default: 200ms].
    #[arg(long = "reachability.max-pause", value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub reachability_max_pause: Option<Duration>,
    /// CPU an `ebpf-malloc` capture may add to its target, in percent of one CPU [default: 5]: the
    /// overhead governor samples allocations to stay under it, and stops the capture (partial) when
    /// even the lowest rate would not.
    #[arg(long = "ebpf-malloc.budget", value_name = "PERCENT")]
    pub ebpf_malloc_budget: Option<f64>,
}

/// The capture loop's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub keep: usize,
    pub max_spool_bytes: u64,
    pub max_concurrent: usize,
    pub max_duration: Duration,
    pub cooldown: Duration,
    pub max_per_hour: usize,
    /// Names given with --capture.instance, besides this host's own.
    pub instance: Vec<String>,
    pub pprof_allow: Allowlist,
    pub sources: Vec<Source>,
    pub reachability_max_pause: Duration,
    /// The `ebpf-malloc` budget, as a share of one CPU (0.05: 5 %).
    pub ebpf_malloc_budget: f64,
}

impl memleak_signals::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let max_duration = self.max_duration.unwrap_or(Duration::from_secs(600));
        if max_duration.is_zero() {
            return Err(OptionError::new("max_duration", "must be more than 0s"));
        }
        let pprof_allow =
            Allowlist::new(&self.pprof_allow, &self.pprof_path).map_err(|e| OptionError::new("pprof_allow", e))?;
        let sources = self
            .targets
            .iter()
            .map(|t| sources::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OptionError::new("targets", e))?;
        let reachability_max_pause = self.reachability_max_pause.unwrap_or(Duration::from_millis(200));
        if reachability_max_pause.is_zero() {
            return Err(OptionError::new("reachability_max_pause", "must be more than 0s"));
        }
        let budget = self.ebpf_malloc_budget.unwrap_or(5.0);
        if !(budget > 0.0 && budget <= 100.0) {
            return Err(OptionError::new(
                "ebpf_malloc_budget",
                "must be a percentage of one CPU, more than 0 and at most 100",
            ));
        }
        Ok(Config {
            reachability_max_pause,
            ebpf_malloc_budget: budget / 100.0,
            dir: self.dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DIR)),
            keep: at_least_one("keep", self.keep, 50)?,
            max_spool_bytes: self.max_spool_bytes.unwrap_or(256 << 20).max(1),
            max_concurrent: at_least_one("max_concurrent", self.max_concurrent, 2)?,
            max_duration,
            cooldown: self.cooldown.unwrap_or(Duration::from_secs(1800)),
            max_per_hour: at_least_one("max_per_hour", self.max_per_hour, 12)?,
            instance: self.instance,
            pprof_allow,
            sources,
        })
    }
}
