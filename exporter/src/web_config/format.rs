//! The web configuration file's shape, as the Prometheus exporter-toolkit
//! defines it (`tls_server_config`, `http_server_config`, `basic_auth_users`),
//! read strictly: an unknown key is an error, as in the toolkit.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub tls_server_config: Option<TlsServer>,
    #[serde(default)]
    pub http_server_config: Option<HttpServer>,
    #[serde(default)]
    pub basic_auth_users: Option<BTreeMap<String, String>>,
    /// Read so that its presence is refused with a reason, never ignored.
    #[serde(default)]
    pub rate_limit: Option<serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServer {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// The certificate inline (PEM), instead of `cert_file`.
    pub cert: Option<String>,
    /// The key inline (PEM), instead of `key_file`.
    pub key: Option<String>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    /// The client CA inline (PEM), instead of `client_ca_file`.
    pub client_ca: Option<String>,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpServer {
    pub http2: Option<bool>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}
