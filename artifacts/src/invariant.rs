//! The totals invariant: no leak or heap site exceeds the total it belongs to,
//! and the sites of the main profile add up to that total within the format's
//! rounding (both sides of a summary must come from the same numbers).

use crate::model::Ingested;
use crate::sites;

/// Which total the first value of a format's main profile adds up to, and how
/// many bytes of rounding each printed number may carry.
struct Rule {
    format: &'static str,
    total: &'static str,
    rounding_per_number: u64,
}

/// Formats without a rule (asan, mimalloc, bpftrace) have no total that a profile adds up to.
const RULES: &[Rule] = &[
    Rule { format: "memcheck", total: "leaked_bytes", rounding_per_number: 0 },
    Rule { format: "lsan", total: "leaked_bytes", rounding_per_number: 0 },
    // heaptrack_print writes 307.20K (K = 1000 B): each number within 5 B; the data file is exact.
    Rule { format: "heaptrack", total: "leaked_bytes", rounding_per_number: 5 },
    Rule { format: "jemalloc", total: "inuse_bytes", rounding_per_number: 0 },
    Rule { format: "tcmalloc", total: "inuse_bytes", rounding_per_number: 0 },
    Rule { format: "massif", total: "profile_heap_bytes", rounding_per_number: 0 },
];

/// Whether `ingested` keeps the invariant; the error says which site or sum breaks it, and by how much.
/// When the parse left detail out (`left_out`) or the input lacks it (`hints`), the sites may add up
/// to less than the total, never more.
pub fn check(ingested: &Ingested) -> Result<(), String> {
    let Some(rule) = RULES.iter().find(|r| r.format == ingested.format) else { return Ok(()) };
    let Some(profile) = ingested.profiles.first() else { return Ok(()) };
    let Some(total) = ingested.total(rule.total) else {
        return if profile.samples.is_empty() {
            Ok(())
        } else {
            Err(format!("{}: a profile of {} samples but no {} total", rule.format, profile.samples.len(), rule.total))
        };
    };
    let all = sites::top(profile, 0, usize::MAX);
    for site in &all {
        let value = site.values.first().copied().unwrap_or(0) as f64;
        if value > total + 2.0 * rule.rounding_per_number as f64 {
            return Err(format!(
                "{}: the site {} holds {value}, more than the {} of {total}",
                rule.format, site.frame, rule.total
            ));
        }
    }
    let sum = profile.total(0) as f64;
    let slack = (rule.rounding_per_number * (all.len() as u64 + 1)) as f64;
    if sum > total + slack {
        return Err(format!("{}: the sites add up to {sum}, more than the {} of {total}", rule.format, rule.total));
    }
    if ingested.left_out.is_empty() && ingested.hints.is_empty() && sum + slack < total {
        return Err(format!(
            "{}: the sites add up to {sum}, less than the {} of {total}, and nothing is said to be left out",
            rule.format, rule.total
        ));
    }
    Ok(())
}
