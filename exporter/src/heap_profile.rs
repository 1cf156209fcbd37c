//! The exporter's own heap profile (pprof, gzipped protobuf) from jemalloc.

/// Dumps the current heap profile, or says why it cannot.
pub async fn dump() -> Result<Vec<u8>, String> {
    let Some(ctl) = jemalloc_pprof::PROF_CTL.as_ref() else {
        return Err("jemalloc profiling is not available in this build".into());
    };
    let mut ctl = ctl.lock().await;
    if !ctl.activated() {
        return Err("jemalloc profiling is not active (malloc_conf prof_active:false)".into());
    }
    ctl.dump_pprof().map_err(|e| format!("cannot dump the heap profile: {e}"))
}
