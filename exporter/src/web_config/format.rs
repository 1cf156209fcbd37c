//! The web configuration file's shape, as the Prometheus exporter-toolkit
//! defines it (`tls_server_config`, `http_server_config`, `basic_auth_users`),
//! read strictly: an unknown key is an error, as in the toolkit. Errors never
//! quote a value: the file holds password hashes and may hold private keys.

use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The file's text parsed; an error says where and what is wrong, with every quoted value left out.
pub fn parse(text: &str) -> Result<File, String> {
    match serde_norway::from_str::<Option<File>>(text) {
        Ok(file) => Ok(file.unwrap_or_default()),
        Err(e) => Err(without_quoted_values(&e.to_string())),
    }
}

/// `message` with each double-quoted string (serde quotes a value it did not expect that way,
/// escaping its quotes) replaced by `<value hidden>`; keys, quoted with backticks, stay.
fn without_quoted_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        let mut escaped = false;
        for inner in chars.by_ref() {
            match inner {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => break,
                _ => escaped = false,
            }
        }
        out.push_str("<value hidden>");
    }
    out
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub tls_server_config: Option<TlsServer>,
    #[serde(default)]
    pub http_server_config: Option<HttpServer>,
    #[serde(default, deserialize_with = "unique_users")]
    pub basic_auth_users: Option<BTreeMap<String, String>>,
    /// Read so that its presence is refused with a reason, never ignored.
    #[serde(default)]
    pub rate_limit: Option<serde_norway::Value>,
}

/// `basic_auth_users`, refusing a user listed twice (YAML would keep the last one silently).
fn unique_users<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct UniqueUsers(BTreeMap<String, String>);
    impl<'de> Deserialize<'de> for UniqueUsers {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(UniqueUsers(BTreeMap::new()))
        }
    }
    impl<'de> Visitor<'de> for UniqueUsers {
        type Value = UniqueUsers;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of user names to bcrypt hashes")
        }
        fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<UniqueUsers, A::Error> {
            while let Some((user, hash)) = map.next_entry::<String, String>()? {
                if self.0.contains_key(&user) {
                    return Err(A::Error::custom(format!("user `{user}` is listed twice; keep one entry")));
                }
                self.0.insert(user, hash);
            }
            Ok(self)
        }
    }
    Ok(Option::<UniqueUsers>::deserialize(d)?.map(|u| u.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_and_the_place_but_not_the_value() {
        // A hash pasted as `user:hash` (no space after the colon) is one string, not a map.
        let hash = "$2b$10$abcdefghijklmnopqrstuu0123456789012345678901234567890";
        let err = parse(&format!("basic_auth_users:\n  prom:{hash}\n")).unwrap_err();
        assert!(err.contains("basic_auth_users") && err.contains("line 2") && !err.contains("abcdefgh"), "{err}");
        let pem = "prefer_server_cipher_suites: \"-----BEGIN PRIVATE KEY-----\\nMIIE\\\"q\\n\"";
        let err = parse(&format!("tls_server_config:\n  {pem}\n")).unwrap_err();
        let shown = "tls_server_config.prefer_server_cipher_suites: invalid type: string <value hidden>";
        assert!(err.contains(shown) && !err.contains("MIIE") && !err.contains("BEGIN"), "{err}");
        let err = parse("basic_auth_users:\n  alice: x\n  bob: y\n  alice: z\n").unwrap_err();
        assert!(err.contains("basic_auth_users: user `alice` is listed twice"), "{err}");
        let users = parse("basic_auth_users:\n  alice: x\n  bob: y\n").unwrap().basic_auth_users.unwrap();
        assert_eq!(users.keys().collect::<Vec<_>>(), ["alice", "bob"]);
        assert!(parse("basic_auth_users:\n").unwrap().basic_auth_users.is_none());
        let err = parse("tls_server_config:\n  cert_fil: x\n").unwrap_err();
        assert!(err.contains("unknown field `cert_fil`"), "{err}");
    }
}
