//! `hako-docgen OUT_DIR`: writes hako's man pages, shell completions and package description
//! under OUT_DIR (scripts/package.sh runs it before `cargo deb`).

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .context("usage: hako-docgen OUT_DIR")?;
    hako_docgen::generate(std::path::Path::new(&out))
}
