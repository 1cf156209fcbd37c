//! The `global-alloc` feature as a Rust service uses it: a binary whose `#[global_allocator]` is `Sampled<System>`, depending on the crate with default features off.
//!
//! The service is generated in a temporary directory (its own workspace, so cargo does not unify
//! its features with the cdylib's `interpose`) from `programs/sampled_service.rs`, and built
//! offline with the toolchain running these tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::estimate::Replay;
use common::uprobes::{Probes, of};
use common::{can_run_privileged, one, spawn_ok};
use object::{Object, ObjectSymbol};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The C-ABI names the cdylib interposes: none may be defined in a service's binary.
const INTERPOSED: [&str; 11] = [
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
];

fn service() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let sampler = Path::new(env!("CARGO_MANIFEST_DIR"));
        let project = tempfile::tempdir().unwrap().keep();
        std::fs::create_dir(project.join("src")).unwrap();
        std::fs::copy(sampler.join("tests/programs/sampled_service.rs"), project.join("src/main.rs")).unwrap();
        let manifest = format!(
            "[package]\nname = \"sampled-service\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nmemleak-sampler = {{ path = {:?}, default-features = false, features = [\"global-alloc\"] }}\n\n\
             [workspace]\n",
            sampler.display().to_string()
        );
        std::fs::write(project.join("Cargo.toml"), manifest).unwrap();
        // In this profile's target directory (target/debug/sampled-service), so rebuilds are incremental.
        let exe = std::env::current_exe().unwrap();
        let target = exe.parent().and_then(Path::parent).unwrap().join("sampled-service");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--offline", "--quiet", "--manifest-path"])
            .arg(project.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success(), "building the sampled service failed");
        let _ = std::fs::remove_dir_all(&project);
        target.join("release/sampled-service")
    })
}

#[test]
fn a_service_without_default_features_keeps_its_own_malloc_and_has_the_markers() {
    let binary = std::fs::read(service()).unwrap();
    let file = object::File::parse(&*binary).unwrap();
    let defined: Vec<&str> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.is_definition())
        .filter_map(|s| s.name().ok())
        .collect();
    for name in INTERPOSED {
        assert!(!defined.contains(&name), "the service defines {name}: it would replace the process's allocator");
    }
    for name in ["memleak_sampler_alloc", "memleak_sampler_free", "memleak_sampler_stats"] {
        assert!(defined.contains(&name), "the service lacks {name}");
    }
    let address = |name: &str| file.symbols().find(|s| s.name() == Ok(name)).unwrap().address();
    assert_ne!(address("memleak_sampler_alloc"), address("memleak_sampler_free"), "markers folded into one");
}

#[test]
fn the_services_markers_fire_for_its_allocations() {
    if !can_run_privileged() {
        return;
    }
    let mean = 4096;
    let probes = Probes::attach(service());
    let (pid, output) = spawn_ok(Command::new(service()).env("MEMLEAK_SAMPLER_MEAN_BYTES", mean.to_string()));
    let markers = of(&probes.events(), pid);
    let replay = Replay::of(&markers);

    let kept_size = one(&output, "kept_size");
    let kept = replay.live.values().filter(|&&s| s == kept_size).count() as u64;
    assert_eq!(kept, one(&output, "kept"), "the forgotten buffers are live at exit");
    // The vector grown by push went through realloc: its sizes grow, each reported freed.
    let grown = one(&output, "grown");
    assert!(replay.freed.contains(&grown), "the final {grown} B vector was sampled and freed");
    // The counters, read after the last allocation, match what the probes saw.
    assert_eq!(one(&output, "mean_bytes"), mean);
    assert_eq!(one(&output, "sampled"), replay.allocated.len() as u64);
    assert_eq!(one(&output, "sampled_freed"), replay.freed.len() as u64);
    assert_eq!(one(&output, "dropped"), 0);
}
