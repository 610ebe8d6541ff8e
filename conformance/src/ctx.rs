//! What every case gets: the runtime, the host facts, the rootfs template and a source of
//! unique ids.

use crate::bundle::Bundle;
use crate::host::Host;
use crate::rootfs::Template;
use crate::rootless::Rootless;
use crate::runtime::Runtime;
use anyhow::Result;
use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

/// Shared state of one suite run.
pub struct Ctx {
    /// The runtime under test.
    pub rt: Runtime,
    /// Host facts.
    pub host: Rc<Host>,
    /// The rootfs template.
    pub template: Rc<Template>,
    /// Directory under which every case's bundle lives.
    pub work: PathBuf,
    /// In a `--rootless` run, the user the runtime runs as and its limits.
    pub rootless: Option<Rc<Rootless>>,
    seq: Rc<Cell<u32>>,
}

impl Ctx {
    /// A new context.
    pub fn new(rt: Runtime, host: Host, template: Template, work: PathBuf) -> Self {
        Ctx {
            rt,
            host: Rc::new(host),
            template: Rc::new(template),
            work,
            rootless: None,
            seq: Rc::new(Cell::new(0)),
        }
    }

    /// This context in a rootless run as `r`'s user.
    pub fn with_rootless(mut self, r: Rootless) -> Self {
        self.rootless = Some(Rc::new(r));
        self
    }

    /// The same host, template, work directory and id sequence, driving runtime `rt`.
    pub fn with_runtime(&self, rt: Runtime) -> Self {
        Ctx {
            rt,
            host: Rc::clone(&self.host),
            template: Rc::clone(&self.template),
            work: self.work.clone(),
            rootless: self.rootless.clone(),
            seq: Rc::clone(&self.seq),
        }
    }

    /// A unique suffix for ids and paths.
    pub fn unique(&self) -> String {
        let n = self.seq.get();
        self.seq.set(n + 1);
        format!("{}-{n}", std::process::id())
    }

    /// A fresh bundle with the base config and its own id and cgroup path.
    pub fn bundle(&self) -> Result<Bundle<'_>> {
        Bundle::new(self, &self.unique())
    }
}
