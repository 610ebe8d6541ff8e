//! hako-conformance
fn main() {}
