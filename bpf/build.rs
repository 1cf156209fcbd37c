//! Compiles the C BPF programs with clang (`-O2 -g -target bpf`; `-g` makes the
//! BTF that map definitions need). Without clang the crate still builds: the
//! objects are empty and the collectors report themselves unsupported.

use std::path::PathBuf;
use std::process::Command;

const PROGRAMS: &[&str] = &["page_faults", "memory_syscalls"];

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
                    "cargo:warning=clang not found ({e}): BPF signals will report themselves unsupported; install clang"
                );
                // An empty object: `built_with_bpf()` is false and the collectors say so.
                let _ = std::fs::write(&object, b"");
            }
        }
    }
}
