//! `tls_server_config` turned into a rustls server configuration (the ring
//! provider the OTLP client already uses): certificate and key, client
//! certificate policy, protocol versions, cipher suites and curves. What
//! rustls cannot do (TLS 1.0/1.1, CBC or RSA key-exchange suites, P-521) is an
//! error naming what it offers instead, never silently dropped.

use super::client_certs::{AnyClientCert, ClientAuth};
use super::format::TlsServer;
use rustls::crypto::{CryptoProvider, SupportedKxGroup, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest PEM file read (a certificate chain is kilobytes).
const MAX_PEM_BYTES: u64 = 1 << 20;

/// The listener's TLS, built from the file.
#[derive(Debug)]
pub struct Tls {
    pub config: Arc<ServerConfig>,
    /// Whether a certificate a client presents has been verified against `client_ca_file`
    /// (so that a connection with one is authenticated).
    pub verifies_clients: bool,
    /// Whether every connection must present such a verified certificate.
    pub requires_verified_client: bool,
}

/// Builds the TLS of `tls` (relative paths are taken from `dir`, the web config's folder);
/// `None` when it names no certificate. `files` receives every file read.
pub fn build(tls: &TlsServer, dir: &Path, files: &mut Vec<PathBuf>) -> Result<Option<Tls>, String> {
    let cert = pem_source("cert", tls.cert.as_deref(), "cert_file", tls.cert_file.as_deref(), dir, files)?;
    let key = pem_source("key", tls.key.as_deref(), "key_file", tls.key_file.as_deref(), dir, files)?;
    let (cert, key) = match (cert, key) {
        (None, None) => return refuse_without_certificate(tls).map(|()| None),
        (Some(_), None) => return Err("key_file is missing: give the certificate's private key (PEM)".into()),
        (None, Some(_)) => {
            return Err("cert_file is missing: give the certificate (PEM) that goes with key_file".into());
        }
        (Some(cert), Some(key)) => (cert, key),
    };
    let chain = CertificateDer::pem_slice_iter(cert.1.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not PEM certificates: {e}", cert.0))?;
    if chain.is_empty() {
        return Err(format!("{}: holds no CERTIFICATE block", cert.0));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key.1.as_bytes())
        .map_err(|e| format!("{}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}", key.0))?;
    let provider = Arc::new(provider(tls)?);
    let versions = versions(tls.min_version.as_deref(), tls.max_version.as_deref())?;
    let auth = ClientAuth::parse(tls.client_auth_type.as_deref())?;
    let ca =
        pem_source("client_ca", tls.client_ca.as_deref(), "client_ca_file", tls.client_ca_file.as_deref(), dir, files)?;
    if tls.client_allowed_sans.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err("client_allowed_sans is not supported: give each client its own CA, or terminate TLS in a proxy that checks SANs".into());
    }
    let verifier = client_verifier(auth, ca, &provider)?;
    let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("min_version/max_version: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(|e| format!("{} and {}: {e}; is the key the certificate's?", cert.0, key.0))?;
    // The Go default: the server's order of cipher_suites wins.
    config.ignore_client_order = tls.prefer_server_cipher_suites.unwrap_or(true);
    // HTTP/1.1 only: a client offering h2 and http/1.1 (Prometheus) gets http/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Tls {
        config: Arc::new(config),
        verifies_clients: auth.verifies(),
        requires_verified_client: auth == ClientAuth::RequireAndVerify,
    }))
}

/// Without a certificate, TLS is off: then no other TLS key may be set.
fn refuse_without_certificate(tls: &TlsServer) -> Result<(), String> {
    let set = [
        ("client_auth_type", tls.client_auth_type.is_some()),
        ("client_ca_file", tls.client_ca_file.is_some() || tls.client_ca.is_some()),
        ("min_version", tls.min_version.is_some()),
        ("max_version", tls.max_version.is_some()),
        ("cipher_suites", tls.cipher_suites.is_some()),
        ("curve_preferences", tls.curve_preferences.is_some()),
    ];
    match set.iter().find(|(_, given)| *given) {
        Some((key, _)) => Err(format!("{key} is set but cert_file and key_file are not: TLS needs both")),
        None => Ok(()),
    }
}

/// (what to name it by, its text): inline PEM (`inline_key`) or a file (`file_key`), not both.
fn pem_source(
    inline_key: &str,
    inline: Option<&str>,
    file_key: &str,
    file: Option<&Path>,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> Result<Option<(String, String)>, String> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(format!("{inline_key} and {file_key} are both set; give one")),
        (Some(text), None) => Ok(Some((inline_key.to_owned(), text.to_owned()))),
        (None, Some(path)) if path.as_os_str().is_empty() => Ok(None),
        (None, Some(path)) => {
            let path = dir.join(path);
            files.push(path.clone());
            crate::bounded_file::read_text(&path, MAX_PEM_BYTES, file_key)
                .map(|text| Some((format!("{file_key} {}", path.display()), text)))
                .map_err(|e| format!("{e:#}"))
        }
        (None, None) => Ok(None),
    }
}

fn client_verifier(
    auth: ClientAuth,
    ca: Option<(String, String)>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let roots = match (auth.verifies(), ca) {
        (true, None) => {
            return Err(format!("client_auth_type {auth:?} verifies client certificates: set client_ca_file"));
        }
        (false, Some((name, _))) => {
            return Err(format!(
                "{name} is set but client_auth_type {auth:?} does not verify client certificates against it: \
                 use RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
            ));
        }
        (true, Some((name, text))) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
                let cert = cert.map_err(|e| format!("{name}: not PEM certificates: {e}"))?;
                roots.add(cert).map_err(|e| format!("{name}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("{name}: holds no CERTIFICATE block"));
            }
            Arc::new(roots)
        }
        (false, None) => RootCertStore::empty().into(),
    };
    let verifier = match auth {
        ClientAuth::None => return Ok(WebPkiClientVerifier::no_client_auth()),
        ClientAuth::Request => AnyClientCert::verifier(provider, false),
        ClientAuth::RequireAny => AnyClientCert::verifier(provider, true),
        ClientAuth::VerifyIfGiven => WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider))
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("client_ca_file: {e}"))?,
        ClientAuth::RequireAndVerify => WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider))
            .build()
            .map_err(|e| format!("client_ca_file: {e}"))?,
    };
    Ok(verifier)
}

/// `TLS12`, `TLS13` (the toolkit's names); `min_version` defaults to TLS12, `max_version` to TLS13.
fn versions(min: Option<&str>, max: Option<&str>) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let rank = |key: &str, name: &str| match name {
        "TLS12" => Ok(0),
        "TLS13" => Ok(1),
        "TLS10" | "TLS11" => Err(format!(
            "{key} {name}: rustls, the TLS library of memleak-exporter, implements TLS 1.2 and 1.3 only; use TLS12 or TLS13"
        )),
        other => Err(format!("{key} {other:?}: unknown; use TLS12 or TLS13")),
    };
    let low = min.map_or(Ok(0), |m| rank("min_version", m))?;
    let high = max.map_or(Ok(1), |m| rank("max_version", m))?;
    if low > high {
        return Err(format!("min_version {} is above max_version {}", min.unwrap_or("TLS12"), max.unwrap_or("TLS13")));
    }
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    Ok(all[low..=high].to_vec())
}

/// The ring provider restricted to `cipher_suites` and ordered by `curve_preferences`.
fn provider(tls: &TlsServer) -> Result<CryptoProvider, String> {
    let mut provider = ring::default_provider();
    if let Some(names) = tls.cipher_suites.as_ref().filter(|n| !n.is_empty()) {
        let chosen = names.iter().map(|n| suite(n)).collect::<Result<Vec<_>, _>>()?;
        // A version none of whose suites is listed keeps its own (as Go's list leaves TLS 1.3 alone).
        let listed = |tls13: bool| chosen.iter().any(|s| s.version() == version(tls13));
        let kept = provider.cipher_suites.iter().filter(|s| !listed(s.version() == &rustls::version::TLS13));
        provider.cipher_suites = chosen.iter().copied().chain(kept.copied()).collect();
    }
    if let Some(names) = tls.curve_preferences.as_ref().filter(|n| !n.is_empty()) {
        provider.kx_groups = names.iter().map(|n| curve(n)).collect::<Result<Vec<_>, _>>()?;
    }
    Ok(provider)
}

fn version(tls13: bool) -> &'static SupportedProtocolVersion {
    if tls13 { &rustls::version::TLS13 } else { &rustls::version::TLS12 }
}

/// Go's cipher suite names, as the toolkit takes them, of the suites rustls implements.
fn suites() -> [(&'static str, SupportedCipherSuite); 9] {
    use ring::cipher_suite as s;
    [
        ("TLS_AES_128_GCM_SHA256", s::TLS13_AES_128_GCM_SHA256),
        ("TLS_AES_256_GCM_SHA384", s::TLS13_AES_256_GCM_SHA384),
        ("TLS_CHACHA20_POLY1305_SHA256", s::TLS13_CHACHA20_POLY1305_SHA256),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", s::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", s::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", s::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", s::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", s::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", s::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
    ]
}

fn suite(name: &str) -> Result<SupportedCipherSuite, String> {
    // Go also accepts the ChaCha20 suites without their hash's name.
    let full = if name.ends_with("_CHACHA20_POLY1305") { format!("{name}_SHA256") } else { name.to_owned() };
    suites().iter().find(|(n, _)| *n == full).map(|(_, s)| *s).ok_or_else(|| {
        let offered: Vec<&str> = suites().iter().map(|(n, _)| *n).collect();
        format!(
            "cipher_suites: {name:?} is not implemented by rustls (no CBC, RSA key exchange or 3DES suites); \
             it offers {}",
            offered.join(", ")
        )
    })
}

fn curve(name: &str) -> Result<&'static dyn SupportedKxGroup, String> {
    use ring::kx_group as k;
    match name {
        "X25519" => Ok(k::X25519),
        "CurveP256" => Ok(k::SECP256R1),
        "CurveP384" => Ok(k::SECP384R1),
        other => Err(format!(
            "curve_preferences: {other:?} is not offered by rustls with ring; use X25519, CurveP256 or CurveP384"
        )),
    }
}
