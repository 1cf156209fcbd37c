//! Compiles the C BPF programs with clang (`-O2 -g -target bpf`; `-g` makes the
//! BTF that map definitions need). Without clang the crate still builds: the
//! objects are empty and the collectors report themselves unsupported, and
//! the next build tries again once clang is installed (no `cargo clean`).

use std::path::PathBuf;
use std::process::Command;

const PROGRAMS: &[&str] = &["page_faults", "memory_syscalls", "sampler_markers", "malloc_trace"];

// A broken BPF program must stop the build, as a compile error would.
#[allow(clippy::panic)]
fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    println!("cargo:rerun-if-changed=src/c");
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    for name in PROGRAMS {
        let object = out.join(format!("{name}.bpf.o"));
        let status = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c"])
            .arg(format!("src/c/{name}.bpf.c"))
            .arg("-o")
            .arg(&object)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("clang failed on src/c/{name}.bpf.c ({s}); fix the program"),
            Err(e) => {
                println!(
                    "cargo:warning=clang not found ({e}): the eBPF collectors will report themselves unsupported; install clang"
                );
                // Empty objects: `built_with_bpf()` is false and the collectors say so.
                for name in PROGRAMS {
                    let _ = std::fs::write(out.join(format!("{name}.bpf.o")), b"");
                }
                watch_for(&clang);
                return;
            }
        }
    }
}

/// Makes cargo run this script again when `clang` may have appeared: when a
/// folder of `PATH` (or the folder `CLANG` names) changes, as installing it
/// adds an entry there. Only folders that exist are watched: cargo takes a
/// missing path as always changed and would rebuild the crate every time.
fn watch_for(clang: &str) {
    let named = PathBuf::from(clang);
    let folders: Vec<PathBuf> = match named.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) => vec![folder.to_path_buf()],
        None => std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect(),
    };
    for folder in folders.iter().filter(|f| f.is_dir()) {
        println!("cargo:rerun-if-changed={}", folder.display());
    }
}
