//! Copies the example receivers' sources into `OUT_DIR` for the servers to include, so that
//! they serve the examples' own routes, handlers and extractors rather than a copy. A file
//! included into a module cannot open with inner doc comments (`//!`): those become plain
//! comments; nothing else changes.

use std::path::Path;
use std::{env, fs};

fn main() {
    let out = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    for name in ["axum_receiver.rs", "actix_receiver.rs"] {
        let source = Path::new("../../examples").join(name);
        println!("cargo::rerun-if-changed={}", source.display());
        let text = fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
        let text: String = text
            .lines()
            .map(|line| match line.strip_prefix("//!") {
                Some(rest) => format!("//{rest}\n"),
                None => format!("{line}\n"),
            })
            .collect();
        fs::write(Path::new(&out).join(name), text).expect("writing to OUT_DIR");
    }
}
