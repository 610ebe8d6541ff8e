//! The cgroup v2 device filter: cgroup v2 has no devices controller; the
//! kernel instead runs `BPF_PROG_TYPE_CGROUP_DEVICE` programs attached to the
//! cgroup (kernel commit ebc614f68736 "bpf, cgroup: implement eBPF-based
//! device controller for cgroup v2"; Documentation/admin-guide/cgroup-v2.rst
//! "Device controller"). The program sees `struct bpf_cgroup_dev_ctx`
//! (type and access in `access_type`, then major, minor) and returns 1 to
//! allow, 0 to deny (EPERM).
//!
//! Like runc (libcontainer/cgroups/devices/devicefilter.go) and crun
//! (src/libcrun/ebpf.c) hako compiles the *emulated* v1 state — the
//! [`DeviceFilter`](crate::devices::DeviceFilter) the crate already computes,
//! so v1 and v2 accept and refuse the same rule lists — into straight-line
//! eBPF, with no maps and no helper calls. The instruction encoding is done
//! here (`insn`), a handful of opcodes, instead of pulling in an eBPF
//! assembler; the bpf(2) calls live in `sys`, the only unsafe code.

pub(crate) mod device_program;
pub(crate) mod insn;
#[cfg(test)]
mod interp;
pub(crate) mod sys;
