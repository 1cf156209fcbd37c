//! `basic_auth_users`: user names and bcrypt hashes, and the check of a
//! request's `Authorization: Basic` credentials against them.
//!
//! bcrypt costs tens to hundreds of milliseconds by design, so, as the
//! exporter-toolkit does, a successful check is remembered: keyed by a SHA-256
//! of user, hash and password (the password itself is never kept), at most
//! `CACHE_ENTRIES` of them, oldest forgotten first. Only successes are kept,
//! so guessing cannot evict a scraper's entry. Checks that miss the cache run
//! one at a time on a blocking thread, which holds the turn and fills the
//! cache itself: a client that hangs up mid-check (Prometheus at its scrape
//! timeout) neither loses the result nor lets a second check start, so a
//! flood of wrong passwords costs one core and never holds the other
//! blocking threads, where scrapes run.

use base64::Engine;
use bcrypt::HashParts;
use std::collections::{BTreeMap, VecDeque};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use subtle::ConstantTimeEq;

/// Successful checks remembered.
const CACHE_ENTRIES: usize = 128;
/// The bcrypt costs that bcrypt checks at all.
const MIN_COST: u32 = 4;
const MAX_COST: u32 = 31;
/// Above it a check takes long enough (2^cost rounds, checks one at a time) that a client
/// sending wrong passwords delays every scrape that misses the cache by seconds.
pub const SLOW_COST: u32 = 12;

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
            let make_one = "make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`";
            let parts = HashParts::from_str(hash)
                .map_err(|e| format!("basic_auth_users.{user}: not a bcrypt hash ({e}); {make_one}"))?;
            // Outside 4..=31 bcrypt (and Go) refuse to check: no password would ever match.
            let cost = parts.get_cost();
            if !(MIN_COST..=MAX_COST).contains(&cost) {
                return Err(format!(
                    "basic_auth_users.{user}: bcrypt cost {cost} is outside {MIN_COST}..={MAX_COST}; {make_one}"
                ));
            }
        }
        Ok(Users(users))
    }

    /// The highest bcrypt cost of the users' hashes (0 without users).
    pub fn highest_cost(&self) -> u32 {
        self.0.values().filter_map(|h| HashParts::from_str(h).ok()).map(|p| p.get_cost()).max().unwrap_or(0)
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
    cache: Arc<Mutex<VecDeque<[u8; 32]>>>,
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl Verifier {
    /// Whether `authorization` (the header's value) names a user of `users` with their password.
    pub async fn check(&self, users: &Users, authorization: Option<&[u8]>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else { return false };
        let known = users.hash_of(&user);
        // An unknown user costs a bcrypt too, so timing does not tell which users exist.
        let Some(hash) = known.or_else(|| users.0.values().next().map(String::as_str)) else { return false };
        let key = cache_key(&user, hash, &password);
        if known.is_some() && cached(&self.cache, &key) {
            return true;
        }
        let turn = Arc::clone(&self.turn).lock_owned().await;
        // Another request may have checked the same credentials while this one waited.
        if known.is_some() && cached(&self.cache, &key) {
            return true;
        }
        let (hash, cache, known) = (hash.to_owned(), Arc::clone(&self.cache), known.is_some());
        tokio::task::spawn_blocking(move || {
            let ok = bcrypt::verify(password, &hash).unwrap_or(false) && known;
            if ok {
                remember(&cache, key);
            }
            drop(turn);
            ok
        })
        .await
        .unwrap_or(false)
    }
}

fn cached(cache: &Mutex<VecDeque<[u8; 32]>>, key: &[u8; 32]) -> bool {
    cache.lock().unwrap_or_else(PoisonError::into_inner).contains(key)
}

fn remember(cache: &Mutex<VecDeque<[u8; 32]>>, key: [u8; 32]) {
    let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if !cache.contains(&key) {
        if cache.len() >= CACHE_ENTRIES {
            cache.pop_front();
        }
        cache.push_back(key);
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
    use std::time::Duration;

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
    async fn a_check_whose_client_hung_up_still_fills_the_cache() {
        let hash = bcrypt::hash("pw", 8).unwrap();
        let users = Users::parse(BTreeMap::from([("prometheus".to_owned(), hash)])).unwrap();
        let verifier = Verifier::default();
        let header = basic("prometheus", "pw");
        // A scrape timeout far shorter than a bcrypt check: the request is dropped mid-check.
        let gave_up = tokio::time::timeout(Duration::from_millis(1), verifier.check(&users, Some(&header))).await;
        assert!(gave_up.is_err(), "a cost-8 bcrypt took under 1 ms");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while verifier.cache.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "the abandoned check never filled the cache");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(verifier.check(&users, Some(&header)).await);
    }

    #[test]
    fn the_cache_is_bounded() {
        let verifier = Verifier::default();
        for i in 0..CACHE_ENTRIES + 10 {
            remember(&verifier.cache, cache_key("u", "h", i.to_string().as_bytes()));
        }
        assert_eq!(verifier.cache.lock().unwrap().len(), CACHE_ENTRIES);
        assert!(!cached(&verifier.cache, &cache_key("u", "h", b"0")), "the oldest went first");
    }

    #[test]
    fn bad_hashes_name_the_user() {
        let err = Users::parse(BTreeMap::from([("bob".to_owned(), "plaintext".to_owned())])).unwrap_err();
        assert!(err.contains("basic_auth_users.bob") && err.contains("bcrypt") && !err.contains("plaintext"), "{err}");
    }

    #[test]
    fn costs_bcrypt_cannot_check_are_refused() {
        let real = bcrypt::hash("x", 4).unwrap();
        let with_cost = |cost: &str| format!("$2b${cost}{}", &real[6..]);
        for cost in ["03", "00", "32", "99"] {
            let err = Users::parse(BTreeMap::from([("bob".to_owned(), with_cost(cost))])).unwrap_err();
            assert!(err.contains("basic_auth_users.bob") && err.contains("outside 4..=31"), "{cost}: {err}");
        }
        // bcrypt itself agrees: below 4 it refuses to check at all.
        assert!(bcrypt::verify("x", &with_cost("03")).is_err());
        let users =
            Users::parse(BTreeMap::from([("a".to_owned(), with_cost("04")), ("b".to_owned(), with_cost("13"))]))
                .unwrap();
        assert_eq!(users.highest_cost(), 13);
    }
}
