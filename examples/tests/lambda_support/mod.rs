//! What the Lambda example's tests share: the example's executable, built as a user builds it,
//! and the process guard that kills it.

// Each test binary uses part of it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The example's executable, built by cargo like any example, in the profile this test was
/// built in (`target/{debug,release,<profile>}/deps/`), so that it reuses what is built.
pub(crate) fn build_example() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe
        .parent()
        .and_then(std::path::Path::parent)
        .and_then(std::path::Path::file_name)
        .and_then(std::ffi::OsStr::to_str)
        .map_or("dev", |dir| if dir == "debug" { "dev" } else { dir })
        .to_owned();
    let output = Command::new(env!("CARGO"))
        .args([
            "build",
            "--profile",
            &profile,
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            "-p",
            "qstash-examples",
            "--example",
            "lambda_receiver",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo build --example lambda_receiver failed"
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "lambda_receiver")
        .find_map(|m| m["executable"].as_str().map(std::path::PathBuf::from))
        .expect("cargo names the example's executable")
}

/// The function process, killed when the test ends however it ends.
pub(crate) struct Function(pub(crate) Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
