//! Reading a small file the user named (the config file, the webhook token)
//! without trusting what is at the path: opened without blocking (a FIFO
//! with no writer would hang `open`), refused unless it is a regular file
//! (`/dev/zero` never ends, a directory is no text), and read up to a bound.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The text of the regular file at `path`, at most `max_bytes`; errors name
/// `what` (`--config.file`) and the path, and say what to give instead.
pub fn read_text(path: &Path, max_bytes: u64, what: &str) -> anyhow::Result<String> {
    let shown = path.display();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot read {what} {shown}: {e}"))?;
    let meta = file.metadata().map_err(|e| anyhow::anyhow!("cannot stat {what} {shown}: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let is = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        anyhow::bail!("{what} {shown} is {is}; give the path of a regular file");
    }
    if meta.len() > max_bytes {
        anyhow::bail!("{what} {shown} has {} bytes; at most {max_bytes} are read", meta.len());
    }
    // The size can lie (files of /proc say 0, a file may grow): the read is bounded anyway.
    let mut bytes = Vec::new();
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| anyhow::anyhow!("cannot read {what} {shown}: {e}"))?;
    if bytes.len() as u64 > max_bytes {
        anyhow::bail!("{what} {shown} grew past {max_bytes} bytes while it was read");
    }
    String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{what} {shown} is not UTF-8 text: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn error(path: &Path) -> String {
        let started = Instant::now();
        let err = format!("{:#}", read_text(path, 1024, "--config.file").unwrap_err());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{}: answered only after {:?}",
            path.display(),
            started.elapsed()
        );
        err
    }

    #[test]
    fn only_a_regular_file_within_the_bound_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fine = dir.path().join("ok.yml");
        std::fs::write(&fine, "web: {}\n").unwrap();
        assert_eq!(read_text(&fine, 1024, "--config.file").unwrap(), "web: {}\n");

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = error(&fifo);
        assert!(err.contains("is a FIFO") && err.contains("--config.file"), "{err}");
        assert!(error(Path::new("/dev/zero")).contains("is a device"));
        assert!(error(dir.path()).contains("is a directory"));
        let big = dir.path().join("big.yml");
        std::fs::write(&big, vec![b'#'; 2048]).unwrap();
        assert!(error(&big).contains("has 2048 bytes; at most 1024"));
        assert!(error(&dir.path().join("missing")).contains("cannot read --config.file"));
        std::fs::write(&fine, [0xff, 0xfe]).unwrap();
        assert!(error(&fine).contains("not UTF-8"));
    }
}
