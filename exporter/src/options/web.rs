//! The HTTP server's options (`--web.*`, YAML `web`).

use memleak_signals::OptionError;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Address to listen on for HTTP [default: :9487, i.e. every interface].
    #[arg(long, value_name = "HOST:PORT")]
    pub listen_address: Option<String>,

    /// Longest time a scrape may take; a lower X-Prometheus-Scrape-Timeout-Seconds wins [default: 10s].
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub scrape_timeout: Option<Duration>,
}

/// The HTTP server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub scrape_timeout: Duration,
}

impl memleak_signals::Options for Options {
    type Config = Config;

    fn resolve(self) -> Result<Config, OptionError> {
        let listen = parse_listen(self.listen_address.as_deref().unwrap_or(":9487"))?;
        let scrape_timeout = self.scrape_timeout.unwrap_or(Duration::from_secs(10));
        if scrape_timeout.is_zero() {
            return Err(OptionError::new("scrape_timeout", "must be more than 0s"));
        }
        Ok(Config { listen, scrape_timeout })
    }
}

/// `:9487` means every interface; anything else is `host:port`.
fn parse_listen(text: &str) -> Result<SocketAddr, OptionError> {
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_owned() };
    let invalid = |why: String| OptionError::new("listen_address", format!("{text:?}: {why}"));
    full.to_socket_addrs()
        .map_err(|e| invalid(format!("{e}; use HOST:PORT such as :9487 or 127.0.0.1:9487")))?
        .next()
        .ok_or_else(|| invalid("resolves to no address".into()))
}
