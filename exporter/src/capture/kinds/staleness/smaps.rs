//! The per-mapping counters of `/proc/PID/smaps` that staleness needs (Rss, Referenced, Anonymous), parsed within bounds.

/// One mapping of smaps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    /// The path or `[heap]`-style name; empty for an unnamed anonymous mapping.
    pub name: String,
    pub rss: u64,
    pub referenced: u64,
    pub anonymous: u64,
}

impl Usage {
    /// Resident bytes not referenced since the bits were cleared.
    pub fn stale(&self) -> u64 {
        self.rss.saturating_sub(self.referenced)
    }

    /// Resident anonymous bytes not referenced (anonymous pages are what a leak holds): at most
    /// the unreferenced bytes, at most the anonymous ones.
    pub fn stale_anonymous(&self) -> u64 {
        self.stale().min(self.anonymous)
    }
}

/// Most mappings kept (a process may have 65,530 by default; the rest are summed as one).
pub const MAX_MAPPINGS: usize = 65_536;

/// Parses smaps text; lines that fit neither a mapping header nor a `Key: N kB` line are skipped.
pub fn parse(text: &str) -> Vec<Usage> {
    let mut out: Vec<Usage> = Vec::new();
    for line in text.lines() {
        if let Some(usage) = header(line) {
            if out.len() >= MAX_MAPPINGS {
                break;
            }
            out.push(usage);
            continue;
        }
        let Some(current) = out.last_mut() else { continue };
        let Some((key, value)) = line.split_once(':') else { continue };
        let kib = value.trim().strip_suffix("kB").and_then(|v| v.trim().parse::<u64>().ok());
        let Some(bytes) = kib.map(|k| k.saturating_mul(1024)) else { continue };
        match key {
            "Rss" => current.rss = bytes,
            "Referenced" => current.referenced = bytes,
            "Anonymous" => current.anonymous = bytes,
            _ => {}
        }
    }
    out
}

/// `start-end perms offset dev inode [name]`.
fn header(line: &str) -> Option<Usage> {
    let mut fields = line.split_whitespace();
    let (range, perms, _offset, dev, _inode) =
        (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let (start, end) = range.split_once('-')?;
    let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
    if perms.len() != 4 || !dev.contains(':') {
        return None;
    }
    let name: Vec<&str> = fields.collect();
    Some(Usage { start, end, perms: perms.to_owned(), name: name.join(" "), ..Usage::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_belong_to_their_mapping() {
        let text = "55d0c6b9e000-55d0c6bbf000 rw-p 00000000 00:00 0                          [heap]\n\
                    Size:                132 kB\nRss:                  64 kB\nReferenced:            16 kB\nAnonymous:            64 kB\n\
                    7f1c2a000000-7f1c2a021000 rw-p 00000000 00:00 0 \n\
                    Rss:                   8 kB\nReferenced:            8 kB\nAnonymous:             8 kB\nVmFlags: rd wr mr mw me ac\n\
                    7f1c2b600000-7f1c2b628000 r--p 00000000 fe:01 1837  /usr/lib/x86_64-linux-gnu/libc.so.6\n\
                    Rss:                 160 kB\nReferenced:           40 kB\nAnonymous:             0 kB\n";
        let maps = parse(text);
        assert_eq!(maps.len(), 3);
        assert_eq!((maps[0].name.as_str(), maps[0].stale(), maps[0].stale_anonymous()), ("[heap]", 48 << 10, 48 << 10));
        assert_eq!((maps[1].name.as_str(), maps[1].stale()), ("", 0));
        assert_eq!((maps[2].stale(), maps[2].stale_anonymous()), (120 << 10, 0));
    }
}
