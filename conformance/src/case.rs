//! A case: a section of the spec, a name, a body that drives the runtime and judges, and the
//! documented reasons a known runtime deviates from the spec on it.

use crate::bundle::Bundle;
use crate::ctx::Ctx;
use crate::runtime::Kind;
use anyhow::Result;

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The runtime did what the spec says.
    Pass,
    /// It did not; why.
    Fail(String),
    /// The host cannot run this case; why.
    Skip(String),
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
    /// Known deviations: runtime kind and the reason it fails this case.
    pub notes: Vec<(Kind, &'static str)>,
}

impl Case {
    /// A case with an arbitrary body.
    pub fn new(
        section: &'static str,
        name: impl Into<String>,
        body: impl Fn(&Ctx) -> Result<Outcome> + 'static,
    ) -> Self {
        Case {
            section,
            name: name.into(),
            body: Box::new(body),
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
        })
    }

    /// Records why runtime `kind` fails this case.
    pub fn note(mut self, kind: Kind, reason: &'static str) -> Self {
        self.notes.push((kind, reason));
        self
    }

    /// `section/name`.
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.section, self.name)
    }
}

/// `Ok(Outcome::Pass)` if `cond`, else a failure saying `what`.
pub fn expect(cond: bool, what: impl Into<String>) -> Result<Outcome> {
    Ok(if cond {
        Outcome::Pass
    } else {
        Outcome::Fail(what.into())
    })
}

/// A skip with a reason.
pub fn skip(reason: impl Into<String>) -> Result<Option<Outcome>> {
    Ok(Some(Outcome::Skip(reason.into())))
}
