//! One module per lifecycle verb; the binary calls these.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod freeze;
pub mod kill;
pub mod query;
pub mod restore;
pub mod run;
pub mod setup;
pub mod spec;
pub mod start;
pub mod update;
