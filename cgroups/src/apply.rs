//! Entry point for writing resources: picks the v1 or v2 writer by mode.
//! Hybrid hosts have all controllers on v1, so they use the v1 writer
//! (including the v1 devices controller, as runc does there).

use std::collections::BTreeMap;

use crate::resources::{Rdma, Resources};
use crate::{Cgroup, Error, Mode};

/// "dev hca_handle=N hca_object=M" lines for rdma.max (same on v1 and v2).
pub(crate) fn rdma_lines(rdma: &BTreeMap<String, Rdma>) -> Vec<String> {
    rdma.iter()
        .filter(|(_, l)| l.hca_handles.is_some() || l.hca_objects.is_some())
        .map(|(dev, l)| {
            let mut s = dev.clone();
            if let Some(h) = l.hca_handles {
                s.push_str(&format!(" hca_handle={h}"));
            }
            if let Some(o) = l.hca_objects {
                s.push_str(&format!(" hca_object={o}"));
            }
            s
        })
        .collect()
}

impl Cgroup {
    /// Writes every resource that is set (v1 files, or v2 files with runc's
    /// conversions). Device rules on v1: the minimal transition from the
    /// current devices.list (on a new cgroup: `a` to devices.deny, then the
    /// allow list), so devices.list ends as runc's. On v2 the rules become an
    /// eBPF device program attached to the cgroup (replacing hako's previous one).
    pub fn apply(&self, res: &Resources) -> Result<(), Error> {
        match self.mode() {
            Mode::Legacy | Mode::Hybrid => self.apply_v1(res),
            Mode::Unified => self.apply_v2(res),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdma_rendering() {
        let mut m = BTreeMap::new();
        m.insert(
            "mlx5_1".to_string(),
            Rdma {
                hca_handles: Some(3),
                hca_objects: None,
            },
        );
        m.insert(
            "mlx4_0".to_string(),
            Rdma {
                hca_handles: Some(2),
                hca_objects: Some(9),
            },
        );
        m.insert("none".to_string(), Rdma::default());
        assert_eq!(
            rdma_lines(&m),
            ["mlx4_0 hca_handle=2 hca_object=9", "mlx5_1 hca_handle=3"]
        );
    }
}
