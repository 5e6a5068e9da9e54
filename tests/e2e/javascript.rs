//! The JavaScript package (`js/`): the component this build embeds,
//! transpiled with jco and run in Node with preview2-shim, through the
//! package's own `node --test` suite, against this build's `fmes` binary.
//!
//! The suite covers the JavaScript API over the component, its errors, the
//! exchange with the Rust CLI in one `_COMM` both ways, the quickstart example
//! run as written, and what the Node shim does not confine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// `js/`, with its dependencies installed.
fn js_dir() -> PathBuf {
    let js = Path::new(REPO).join("js");
    let js = js.canonicalize().unwrap_or(js);
    for package in ["@bytecodealliance/jco", "@bytecodealliance/preview2-shim"] {
        let manifest = js.join("node_modules").join(package).join("package.json");
        assert!(
            manifest.is_file(),
            "{package} is not installed in {}: run bash .ci/install-node.sh",
            js.join("node_modules").display()
        );
    }
    js
}

/// `node args...` in `js/`, with the binary and component under test.
fn node(js: &Path, component: &Path, args: &[&str]) -> Output {
    Command::new("node")
        .args(args)
        .current_dir(js)
        .env("FMES_BIN", env!("CARGO_BIN_EXE_fmes"))
        .env("FMES_COMPONENT", component)
        // The cache the other tests fill: the CLI processes the suite starts
        // then load the compiled component instead of compiling it again.
        .env("FMES_CACHE_DIR", cache_dir())
        .env_remove("FMES_COMM")
        .env_remove("NODE_OPTIONS")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run node (Node 20 or later must be on PATH): {e}"))
}

/// The number after `label` on the line of the test runner's summary that starts with it.
fn summary_count(out: &str, label: &str) -> Option<u64> {
    out.lines()
        .find_map(|line| line.trim_start().strip_prefix(label)?.trim().parse().ok())
}

#[test]
fn javascript_package_test_suite() {
    let js = js_dir();
    let scratch = tempfile::tempdir().unwrap();
    let component = scratch.path().join("fmes_queue.wasm");
    std::fs::write(&component, fmes::runtime::COMPONENT).unwrap();

    // Transpile ahead of the suite, so a jco failure shows as such.
    let transpiled = node(&js, &component, &["scripts/transpile.mjs"]);
    assert!(
        transpiled.status.success(),
        "jco could not transpile the component: {:?}\nstdout:\n{}\nstderr:\n{}",
        transpiled.status,
        stdout(&transpiled),
        stderr(&transpiled)
    );
    let generated = PathBuf::from(stdout(&transpiled).trim());
    assert!(
        generated.join("fmes_queue.js").is_file(),
        "transpile.mjs printed {}, which holds no fmes_queue.js",
        generated.display()
    );

    let output = node(
        &js,
        &component,
        &["--test", "--test-reporter=spec", "test/"],
    );
    let out = stdout(&output);
    assert!(
        output.status.success(),
        "node --test js/test/ failed: {:?}\nstdout:\n{out}\nstderr:\n{}",
        output.status,
        stderr(&output)
    );
    let tests = summary_count(&out, "ℹ tests");
    let passed = summary_count(&out, "ℹ pass");
    assert!(
        matches!((tests, passed), (Some(t), Some(p)) if t > 0 && p == t),
        "node --test's summary does not say every test passed (tests {tests:?}, pass {passed:?}):\n{out}"
    );
    println!("{out}");
}
