//! hako-cgroups: the cgroup layer of the hako runtime, following runc's
//! cgroupfs driver (libcontainer/cgroups/fs and fs2, specconv for defaults).
//!
//! # Modes
//! [`detect_mode`] reads /proc/self/mountinfo: only `cgroup` mounts →
//! [`Mode::Legacy`]; `cgroup` plus `cgroup2` → [`Mode::Hybrid`] (v1
//! controllers, a controller-less v2 tree beside them); only `cgroup2` →
//! [`Mode::Unified`].
//!
//! # Paths
//! [`CgroupPath::resolve`] turns linux.cgroupsPath into per-hierarchy
//! directories: absolute → the same path under every hierarchy's mount
//! point; relative → below hako's own cgroup in each hierarchy (from
//! /proc/self/cgroup, frozen at resolve time so it can be stored in the
//! container state); empty → the container id, relative. `..` escapes are
//! errors. With the systemd driver, `slice:prefix:name` names a transient unit
//! (module [`systemd`]) whose cgroup path is absolute. [`Cgroup::create`] makes the directory in
//! every v1 hierarchy with a controller plus `name=systemd`, and in the
//! cgroup2 tree (hybrid and unified); [`Cgroup::destroy`] removes only that
//! leaf (and child cgroups the container made), never the parents.
//!
//! # Files written
//! [`Resources::from_spec`] validates linux.resources once; [`Cgroup::apply`] writes:
//! - devices (v1): the minimal transition to the wanted rule set via
//!   devices.deny / devices.allow; for a new cgroup `a` deny then the allow
//!   list (spec rules, then runc's default allowed devices), sorted as runc
//!   writes them so devices.list is identical;
//! - memory: memory.limit_in_bytes / memory.memsw.limit_in_bytes (order
//!   chosen so the kernel's memsw ≥ limit check passes), soft_limit_in_bytes,
//!   oom_control, swappiness, kmem.limit_in_bytes and kmem.tcp.limit_in_bytes
//!   (read back: a kernel that keeps another value is an error naming the field);
//!   v2 memory.max, memory.swap.max (swap − limit), memory.low;
//! - cpu: cpu.shares, cfs_period/quota/burst, rt_period/runtime, cpu.idle,
//!   cpuset.cpus/mems (v1 new cpusets inherit the parent's values at
//!   create, otherwise joining fails with ENOSPC); v2 cpu.weight (runc ≥ 1.3.2
//!   quadratic conversion), cpu.max, cpu.max.burst;
//! - pids.max; blkio weight (bfq fallback), leaf weight, weight_device,
//!   throttle.*; v2 io.weight / io.bfq.weight, io.max;
//! - `hugetlb.<size>.limit_in_bytes` / `.max`, net_cls.classid,
//!   net_prio.ifpriomap, rdma.max, and v2 `unified` keys as raw files.
//!
//! A resource that is set but whose controller is not mounted, or whose file
//! the kernel lacks, is an error naming it — nothing is silently skipped.
//! memory.useHierarchy `true` is what the kernel always does and `false` is refused
//! ([`Resources::ignored_fields`] stays for fields the kernel drops); kernel memory limits,
//! which runc 1.1 ignores,
//! are applied where the kernel honours them and refused where it does not.
//!
//! # Device rules on cgroup v2
//! cgroup v2 has no devices controller: on unified hosts [`Cgroup::apply`]
//! compiles the same emulated rule state into a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program and attaches it to the container's directory, replacing hako's
//! previous one without a gap (see the `device_filter` and `bpf` modules).
//! Hybrid hosts keep the v1 devices controller, as runc;
//! [`Cgroup::apply_device_filter`] attaches the eBPF filter explicitly.
//!
//! # Not supported yet
//! - on v2: realtime cpu, leaf weights, disableOOMKiller, swappiness, kernel
//!   and kernelTCP memory limits (no v2 file): [`Error::Unsupported`]; `unified` on v1: [`Error::Unsupported`];
//! - hugetlb statistics, PSI, cpuset statistics.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod apply;
mod apply_v1;
mod apply_v2;
mod bpf;
mod cgroup;
mod convert;
mod device_filter;
mod devices;
mod error;
mod files;
mod freezer;
mod mode;
mod mountinfo;
mod path;
mod proc_cgroup;
mod procs;
mod resources;
mod rootless;
mod self_join;
mod stats;
mod sys;
pub mod systemd;

pub use cgroup::{Cgroup, Hierarchies, Hierarchy, Located};
pub use convert::{blkio_weight_to_io_weight, cpu_shares_to_weight, memory_swap_to_v2};
pub use device_filter::PROG_NAME as DEVICE_FILTER_PROG_NAME;
pub use error::Error;
pub use freezer::{is_frozen_at, is_frozen_opened};
pub use mode::{detect_mode, Mode};
pub use path::CgroupPath;
pub use resources::Resources;
pub use self_join::SelfJoin;
pub use stats::{
    Blkio, BlkioEntry, Cpu, CpuUsage, Hugetlb, Memory, MemoryEntry, Pids, Stats, Throttling,
};
