//! Where the kernel's file systems are (`--path.*`, YAML `paths`).

use memleak_signals::{FsRoots, OptionError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Default, Clone, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Root of the host's file system; sets procfs, sysfs and cgroupfs below it (for containers).
    #[arg(long, value_name = "PATH")]
    pub rootfs: Option<PathBuf>,

    /// procfs mount point [default: /proc, or ROOTFS/proc].
    #[arg(long, value_name = "PATH")]
    pub procfs: Option<PathBuf>,

    /// sysfs mount point [default: /sys, or ROOTFS/sys].
    #[arg(long, value_name = "PATH")]
    pub sysfs: Option<PathBuf>,

    /// cgroup file system mount point [default: /sys/fs/cgroup, or ROOTFS/sys/fs/cgroup].
    #[arg(long, value_name = "PATH")]
    pub cgroupfs: Option<PathBuf>,
}

impl memleak_signals::Options for Options {
    type Config = FsRoots;

    fn resolve(self) -> Result<FsRoots, OptionError> {
        let base = self.rootfs.as_deref().map(FsRoots::under).unwrap_or_default();
        Ok(FsRoots {
            procfs: self.procfs.unwrap_or(base.procfs),
            sysfs: self.sysfs.unwrap_or(base.sysfs),
            cgroupfs: self.cgroupfs.unwrap_or(base.cgroupfs),
        })
    }
}
