//! One OTLP export over gRPC (the generated tonic clients) or HTTP/protobuf
//! (POST to the signal's URL, e.g. `/v1/metrics`), and which
//! failures are worth a retry, per the OTLP specification.

use super::Batch;
use crate::options::otlp::{Export, Protocol};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::profiles::v1development::profiles_service_client::ProfilesServiceClient;
use prost::Message;
use std::io::Write;
use std::time::Duration;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// Why an export failed, and whether (and when) to try it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub message: String,
    pub retryable: bool,
    /// What the receiver asked for (Retry-After, RetryInfo).
    pub retry_after: Option<Duration>,
    /// The receiver could not be reached at all (logged as such).
    pub unreachable: bool,
}

/// A connection to the receiver; cheap to clone.
#[derive(Clone, Debug)]
pub enum Transport {
    Grpc { channel: Channel, metadata: MetadataMap, gzip: bool },
    Http { client: reqwest::Client, url: String, headers: reqwest::header::HeaderMap, gzip: bool },
}

impl Transport {
    /// Builds one signal's client; connects lazily, so an absent receiver at start is not an error.
    pub fn new(config: &Export) -> anyhow::Result<Transport> {
        let ca = match &config.ca_file {
            Some(path) => Some(read_ca_file(path)?),
            None => None,
        };
        match config.protocol {
            Protocol::Grpc => {
                let mut endpoint = Endpoint::from_shared(config.url.clone())
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "--otlp.endpoint {}: not a URL: {e}",
                            crate::options::otlp::redacted_url(&config.url)
                        )
                    })?
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout);
                if config.url.starts_with("https://") {
                    let mut tls = ClientTlsConfig::new().with_native_roots();
                    if let Some(pem) = ca {
                        tls = tls.ca_certificate(Certificate::from_pem(pem));
                    }
                    endpoint = endpoint.tls_config(tls).map_err(|e| anyhow::anyhow!("--otlp TLS settings: {e}"))?;
                }
                let mut metadata = MetadataMap::new();
                for (key, value) in &config.headers {
                    let key = MetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
                        .map_err(|_| anyhow::anyhow!("--otlp.header {key}: not a valid gRPC metadata key"))?;
                    let value = MetadataValue::try_from(value.as_str())
                        .map_err(|_| anyhow::anyhow!("--otlp.header {key}: the value is not printable ASCII"))?;
                    metadata.insert(key, value);
                }
                Ok(Transport::Grpc { channel: endpoint.connect_lazy(), metadata, gzip: config.gzip })
            }
            Protocol::HttpProtobuf => {
                let mut builder = reqwest::Client::builder().timeout(config.timeout).connect_timeout(config.timeout);
                if let Some(pem) = ca {
                    let cert = reqwest::Certificate::from_pem(&pem)
                        .map_err(|e| anyhow::anyhow!("--otlp.ca-file: not a PEM certificate: {e}"))?;
                    builder = builder.add_root_certificate(cert);
                }
                let mut headers = reqwest::header::HeaderMap::new();
                for (key, value) in &config.headers {
                    let name = reqwest::header::HeaderName::from_bytes(key.as_bytes())
                        .map_err(|_| anyhow::anyhow!("--otlp.header {key}: not a valid HTTP header name"))?;
                    let value = reqwest::header::HeaderValue::from_str(value)
                        .map_err(|_| anyhow::anyhow!("--otlp.header {key}: the value is not a valid header value"))?;
                    headers.insert(name, value);
                }
                let client = builder.build().map_err(|e| anyhow::anyhow!("building the OTLP HTTP client: {e}"))?;
                Ok(Transport::Http { client, url: config.url.clone(), headers, gzip: config.gzip })
            }
        }
    }

    /// Sends one batch.
    pub async fn send(&self, batch: &Batch) -> Result<(), Failure> {
        match self {
            Transport::Grpc { channel, metadata, gzip } => grpc(channel.clone(), metadata, *gzip, batch).await,
            Transport::Http { client, url, headers, gzip } => http(client, url, headers, *gzip, batch).await,
        }
    }
}

async fn grpc(channel: Channel, metadata: &MetadataMap, gzip: bool, batch: &Batch) -> Result<(), Failure> {
    fn request<T>(message: T, metadata: &MetadataMap) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = metadata.clone();
        request
    }
    let result = match batch {
        Batch::Metrics(m) => {
            let mut client = MetricsServiceClient::new(channel);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(request(m.clone(), metadata)).await.map(|_| ())
        }
        Batch::Logs(l) => {
            let mut client = LogsServiceClient::new(channel);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(request(l.clone(), metadata)).await.map(|_| ())
        }
        Batch::Profiles(p) => {
            let mut client = ProfilesServiceClient::new(channel);
            if gzip {
                client = client.send_compressed(CompressionEncoding::Gzip);
            }
            client.export(request(p.clone(), metadata)).await.map(|_| ())
        }
    };
    result.map_err(|status| grpc_failure(&status))
}

/// Retryable gRPC codes per the OTLP specification; RESOURCE_EXHAUSTED only with RetryInfo.
fn grpc_failure(status: &tonic::Status) -> Failure {
    use tonic::Code;
    let retry_after = retry_info(status.details());
    let retryable = match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => true,
        Code::ResourceExhausted => retry_after.is_some(),
        _ => false,
    };
    let unreachable = status.code() == Code::Unavailable;
    let mut message = format!("gRPC {:?}: {}", status.code(), status.message());
    if let Some(cause) = std::error::Error::source(status) {
        message = format!("{message}: {}", error_chain(cause));
    }
    Failure { message, retryable, retry_after, unreachable }
}

/// An error and its causes, `: `-joined: a TLS refusal ("invalid peer certificate: UnknownIssuer")
/// sits several causes below "error sending request".
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// google.rpc.Status and RetryInfo, the parts needed to read a retry delay.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(message, repeated, tag = "3")]
    details: Vec<RpcAny>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct RpcAny {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<RpcDuration>,
}
#[derive(Clone, PartialEq, prost::Message)]
struct RpcDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

fn retry_info(details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(details).ok()?;
    let any = status.details.iter().find(|d| d.type_url.ends_with("google.rpc.RetryInfo"))?;
    let delay = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
    let nanos =
        u64::try_from(delay.seconds).ok()?.checked_mul(1_000_000_000)?.checked_add(u64::try_from(delay.nanos).ok()?)?;
    Some(Duration::from_nanos(nanos))
}

async fn http(
    client: &reqwest::Client,
    url: &str,
    headers: &reqwest::header::HeaderMap,
    gzip: bool,
    batch: &Batch,
) -> Result<(), Failure> {
    let body = match batch {
        Batch::Metrics(m) => m.encode_to_vec(),
        Batch::Logs(l) => l.encode_to_vec(),
        Batch::Profiles(p) => p.encode_to_vec(),
    };
    let mut request =
        client.post(url).headers(headers.clone()).header(reqwest::header::CONTENT_TYPE, "application/x-protobuf");
    let body = if gzip {
        request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).and_then(|()| encoder.finish()).map_err(|e| Failure {
            message: format!("compressing the export: {e}"),
            retryable: false,
            retry_after: None,
            unreachable: false,
        })?
    } else {
        body
    };
    // The URL may carry a password: shown without it, and reqwest's error is kept from repeating it.
    let shown = crate::options::otlp::redacted_url(url);
    let response = request.body(body).send().await.map_err(|e| Failure {
        unreachable: e.is_connect() || e.is_timeout(),
        message: format!("POST {shown}: {}", error_chain(&e.without_url())),
        retryable: true,
        retry_after: None,
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(Failure {
        message: format!("POST {shown}: HTTP {status}"),
        retryable: http_retryable(status.as_u16()),
        retry_after,
        unreachable: false,
    })
}

/// Retryable HTTP statuses per the OTLP specification.
fn http_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_codes_the_specification_names_are_retried() {
        assert!(http_retryable(503) && http_retryable(429) && http_retryable(502) && http_retryable(504));
        assert!(!http_retryable(400) && !http_retryable(401) && !http_retryable(500) && !http_retryable(413));
        let code = |c| grpc_failure(&tonic::Status::new(c, "x")).retryable;
        assert!(code(tonic::Code::Unavailable) && code(tonic::Code::DeadlineExceeded) && code(tonic::Code::Aborted));
        assert!(!code(tonic::Code::InvalidArgument) && !code(tonic::Code::Unauthenticated));
        assert!(!code(tonic::Code::ResourceExhausted), "without RetryInfo, RESOURCE_EXHAUSTED is final");
    }

    #[test]
    fn retry_info_is_read_from_the_status_details() {
        let info = RetryInfo { retry_delay: Some(RpcDuration { seconds: 3, nanos: 500_000_000 }) };
        let details = RpcStatus {
            details: vec![RpcAny {
                type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
                value: info.encode_to_vec(),
            }],
        }
        .encode_to_vec();
        let status = tonic::Status::with_details(tonic::Code::ResourceExhausted, "slow down", details.into());
        let failure = grpc_failure(&status);
        assert!(failure.retryable);
        assert_eq!(failure.retry_after, Some(Duration::from_millis(3500)));
    }
}

/// A CA bundle larger than this is not one (the system's whole bundle is ~200 KB).
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// Reads `--otlp.ca-file`: a regular file (a FIFO would block the start, a device
/// never end), bounded, holding at least one PEM certificate.
fn read_ca_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |why: String| anyhow::anyhow!("--otlp.ca-file {}: {why}", path.display());
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| fail(format!("cannot open the CA certificate: {e}")))?;
    let meta = file.metadata().map_err(|e| fail(format!("cannot stat it: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file: give a PEM file of CA certificates".into()));
    }
    if meta.len() > MAX_CA_FILE_BYTES {
        return Err(fail(format!("{} bytes, more than a CA bundle's {MAX_CA_FILE_BYTES}", meta.len())));
    }
    let mut pem = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| fail(format!("cannot read the CA certificate: {e}")))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(fail(format!("more than a CA bundle's {MAX_CA_FILE_BYTES} bytes")));
    }
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(fail("no PEM certificate in it (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(pem)
}

#[cfg(test)]
mod ca_file_tests {
    use super::*;

    #[test]
    fn a_ca_file_that_is_not_a_bounded_pem_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ca.fifo");
        let fifo_c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o600) }, 0);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"").unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, b"junk\n").unwrap();
        let huge = dir.path().join("huge.pem");
        std::fs::write(&huge, vec![b'A'; (MAX_CA_FILE_BYTES + 1) as usize]).unwrap();
        let zero = dir.path().join("zero.pem");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for (path, says) in [
            (&fifo, "not a regular file"),
            (&zero, "not a regular file"),
            (&dir.path().to_path_buf(), "not a regular file"),
            (&empty, "no PEM certificate"),
            (&junk, "no PEM certificate"),
            (&huge, "more than a CA bundle"),
        ] {
            let err = read_ca_file(path).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains("--otlp.ca-file"), "{}: {err}", path.display());
        }
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        assert!(read_ca_file(&good).is_ok());
    }
}
