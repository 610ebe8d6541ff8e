//! A case: a section of the spec, a name, a body that drives the runtime and judges, the
//! mutation that must make it fail (see [`crate::mutation`]), and the documented reasons a
//! known runtime deviates from the spec on it.

use crate::bundle::Bundle;
use crate::ctx::Ctx;
use crate::mutation::{Misbehaviour, Mutation};
use crate::runtime::Kind;
use anyhow::Result;
use serde_json::Value;
use std::fmt;

/// What a skip measured: the probe that ran and what it found. A skip cannot be built without
/// one, so every skip names the host limit it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What was probed (a file, a capability, a kernel answer).
    pub probed: String,
    /// What the probe found.
    pub found: String,
}

impl Probe {
    /// A probe of `probed` that found `found`.
    pub fn new(probed: impl Into<String>, found: impl Into<String>) -> Self {
        Probe {
            probed: probed.into(),
            found: found.into(),
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "probed {}: {}", self.probed, self.found)
    }
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime did what the spec says.
    Pass,
    /// It did not; why.
    Fail(String),
    /// The host cannot run this case: the probe that says so.
    Skip(Probe),
}

/// The body of a case; an `Err` is a failure whose message is the error chain.
pub type Body = Box<dyn Fn(&Ctx) -> Result<Outcome>>;

/// One conformance case.
pub struct Case {
    /// Spec section (`lifecycle`, `process`, `mounts`, ...).
    pub section: &'static str,
    /// Name within the section.
    pub name: String,
    /// What it does.
    pub body: Body,
    /// The mutation of the runtime that must make this case fail.
    pub mutation: Mutation,
    /// Known deviations: runtime kind and the reason it fails this case.
    pub notes: Vec<(Kind, &'static str)>,
}

impl Case {
    /// A case with an arbitrary body; its mutant reverts the config to the base config.
    pub fn new(
        section: &'static str,
        name: impl Into<String>,
        body: impl Fn(&Ctx) -> Result<Outcome> + 'static,
    ) -> Self {
        Case {
            section,
            name: name.into(),
            body: Box::new(body),
            mutation: Mutation::Revert,
            notes: Vec::new(),
        }
    }

    /// A case that runs the checker with `groups` after `setup` shaped the bundle.
    pub fn check(
        section: &'static str,
        name: impl Into<String>,
        groups: &[&str],
        setup: impl Fn(&mut Bundle) -> Result<Option<Outcome>> + 'static,
    ) -> Self {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        Case::new(section, name, move |ctx| {
            let mut b = ctx.bundle()?;
            if let Some(early) = setup(&mut b)? {
                return Ok(early);
            }
            let g: Vec<&str> = groups.iter().map(String::as_str).collect();
            b.check(&g)
        })
    }

    /// A case where `create` (or, failing that, `start`) must fail: the config asks for
    /// something the runtime cannot or must not do, and the spec requires an error rather
    /// than a container that silently differs from its config. No container may be left.
    pub fn reject(
        section: &'static str,
        name: impl Into<String>,
        setup: impl Fn(&mut Bundle) -> Result<Option<Outcome>> + 'static,
    ) -> Self {
        Case::new(section, name, move |ctx| {
            let mut b = ctx.bundle()?;
            b.config["process"]["args"] = serde_json::json!(["/bin/true"]);
            if let Some(early) = setup(&mut b)? {
                return Ok(early);
            }
            rejected(&b)
        })
    }

    /// Records why runtime `kind` fails this case.
    pub fn note(mut self, kind: Kind, reason: &'static str) -> Self {
        self.notes.push((kind, reason));
        self
    }

    /// Replaces the default mutant (revert the config) with `m`.
    pub fn mutant(mut self, m: Mutation) -> Self {
        self.mutation = m;
        self
    }

    /// A mutant that rewrites the config the runtime receives with `edit` (`what` says how).
    pub fn mutate_config(self, what: &'static str, edit: fn(&mut Value)) -> Self {
        self.mutant(Mutation::Config(what, edit))
    }

    /// A mutant runtime that misbehaves in one way.
    pub fn misbehave(self, m: Misbehaviour) -> Self {
        self.mutant(Mutation::Behave(m))
    }

    /// The documented reason runtime `kind` fails this case, if any.
    pub fn note_for(&self, kind: Kind) -> Option<&'static str> {
        self.notes.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n)
    }

    /// `section/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.section, self.name)
    }
}

/// Judges a bundle whose config must be refused: `create` (or `start`) fails and no container
/// is left behind.
pub fn rejected(b: &Bundle) -> Result<Outcome> {
    let created = b.create()?;
    if created.success() {
        let started = b.start()?;
        if started.success() {
            return Ok(Outcome::Fail("create and start both succeeded".into()));
        }
        return Ok(Outcome::Pass);
    }
    if b.runtime(&["state", &b.id])?.success() {
        return Ok(Outcome::Fail(
            "create failed but left a container behind".into(),
        ));
    }
    Ok(Outcome::Pass)
}

/// `Ok(Outcome::Pass)` if `cond`, else a failure saying `what`.
pub fn expect(cond: bool, what: impl Into<String>) -> Result<Outcome> {
    Ok(if cond {
        Outcome::Pass
    } else {
        Outcome::Fail(what.into())
    })
}

/// A skip resting on a probe of `probed` that found `found`.
pub fn skip(probed: impl Into<String>, found: impl Into<String>) -> Outcome {
    Outcome::Skip(Probe::new(probed, found))
}
