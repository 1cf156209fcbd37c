//! `basic_auth_users`: user names and bcrypt hashes, and the check of a
//! request's `Authorization: Basic` credentials against them.
//!
//! bcrypt costs tens to hundreds of milliseconds by design, so, as the
//! exporter-toolkit does, a successful check is remembered: keyed by a SHA-256
//! of user, hash and password (the password itself is never kept), at most
//! `CACHE_ENTRIES` of them, oldest forgotten first. Only successes are kept,
//! so guessing cannot evict a scraper's entry. Checks that miss the cache run
//! one at a time on a blocking thread: a flood of wrong passwords costs one
//! core and never holds the threads scrapes run on.

use base64::Engine;
use bcrypt::HashParts;
use std::collections::{BTreeMap, VecDeque};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use subtle::ConstantTimeEq;

/// Successful checks remembered.
const CACHE_ENTRIES: usize = 128;

/// The users of the file, hashes validated.
#[derive(Debug, Default)]
pub struct Users(BTreeMap<String, String>);

impl Users {
    /// Validates every hash (the error names the user, never the hash).
    pub fn parse(users: BTreeMap<String, String>) -> Result<Users, String> {
        for (user, hash) in &users {
            if user.is_empty() || user.contains(':') {
                return Err(format!("basic_auth_users: user name {user:?} must be non-empty and without ':'"));
            }
            HashParts::from_str(hash).map_err(|e| {
                format!(
                    "basic_auth_users.{user}: not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`"
                )
            })?;
        }
        Ok(Users(users))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The hash of `user`, found with a comparison that takes as long whichever user matches.
    fn hash_of(&self, user: &str) -> Option<&str> {
        let mut found = None;
        for (name, hash) in &self.0 {
            if bool::from(name.as_bytes().ct_eq(user.as_bytes())) {
                found = Some(hash.as_str());
            }
        }
        found
    }
}

/// The checks' shared state, kept across reloads of the file (a changed hash
/// makes other keys, so nothing stale is honoured).
#[derive(Debug, Default)]
pub struct Verifier {
    cache: Mutex<VecDeque<[u8; 32]>>,
    turn: tokio::sync::Mutex<()>,
}

impl Verifier {
    /// Whether `authorization` (the header's value) names a user of `users` with their password.
    pub async fn check(&self, users: &Users, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else { return false };
        let known = users.hash_of(&user);
        // An unknown user costs a bcrypt too, so timing does not tell which users exist.
        let Some(hash) = known.or_else(|| users.0.values().next().map(String::as_str)) else { return false };
        let key = cache_key(&user, hash, &password);
        if known.is_some() && self.cached(&key) {
            return true;
        }
        let _turn = self.turn.lock().await;
        let hash = hash.to_owned();
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        let ok = matched && known.is_some();
        if ok {
            self.remember(key);
        }
        ok
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner).contains(key)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if !cache.contains(&key) {
            if cache.len() >= CACHE_ENTRIES {
                cache.pop_front();
            }
            cache.push_back(key);
        }
    }
}

/// (user, password) of `Basic base64(user:password)`; the scheme is case-insensitive.
fn credentials(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), b"\0", hash.as_bytes(), b"\0", password] {
        context.update(part);
    }
    let mut key = [0; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))).into_bytes()
    }

    #[tokio::test]
    async fn right_wrong_unknown_and_malformed_credentials() {
        // Cost 4 keeps the test quick; the hash comes from the crate's own hasher, as a
        // `$2y$` one from htpasswd is checked end to end in tests/web_config.rs.
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users::parse(BTreeMap::from([("alice".to_owned(), hash)])).unwrap();
        let verifier = Verifier::default();
        assert!(verifier.check(&users, Some(&basic("alice", "s3cret"))).await);
        assert_eq!(verifier.cache.lock().unwrap().len(), 1);
        assert!(verifier.check(&users, Some(&basic("alice", "s3cret"))).await, "from the cache");
        assert!(!verifier.check(&users, Some(&basic("alice", "wrong"))).await);
        assert!(!verifier.check(&users, Some(&basic("bob", "s3cret"))).await);
        assert!(!verifier.check(&users, None).await);
        assert!(!verifier.check(&users, Some(b"Bearer s3cret")).await);
        assert!(!verifier.check(&users, Some(b"Basic !!!")).await);
        assert_eq!(verifier.cache.lock().unwrap().len(), 1, "failures are not remembered");
    }

    #[tokio::test]
    async fn the_cache_is_bounded() {
        let verifier = Verifier::default();
        for i in 0..CACHE_ENTRIES + 10 {
            verifier.remember(cache_key("u", "h", i.to_string().as_bytes()));
        }
        assert_eq!(verifier.cache.lock().unwrap().len(), CACHE_ENTRIES);
        assert!(!verifier.cached(&cache_key("u", "h", b"0")), "the oldest went first");
    }

    #[test]
    fn bad_hashes_name_the_user() {
        let err = Users::parse(BTreeMap::from([("bob".to_owned(), "plaintext".to_owned())])).unwrap_err();
        assert!(err.contains("basic_auth_users.bob") && err.contains("bcrypt") && !err.contains("plaintext"), "{err}");
    }
}
