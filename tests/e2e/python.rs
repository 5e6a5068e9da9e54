//! The Python package (`python/`): its pytest suite, run with the Python
//! wasmtime that `.ci/install-python.sh` installs under `target/tools/python`,
//! on the component this build embeds and against this build's `fmes` binary.
//!
//! The suite covers the Python API over the component, its errors, the
//! exchange with the Rust CLI in one `_COMM` both ways, and the quickstart
//! example run as written.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The venv's Python, which has wasmtime and pytest.
fn venv_python() -> PathBuf {
    let python = Path::new(REPO).join("target/tools/python/bin/python");
    assert!(
        python.is_file(),
        "no Python environment for the tests of python/ at {}: run bash .ci/install-python.sh",
        python.display()
    );
    python
}

#[test]
fn python_package_test_suite() {
    let python = venv_python();
    let scratch = tempfile::tempdir().unwrap();
    let component = scratch.path().join("fmes_queue.wasm");
    std::fs::write(&component, fmes::runtime::COMPONENT).unwrap();

    let tests = Path::new(REPO).join("python/tests");
    let output = Command::new(&python)
        .args(["-m", "pytest"])
        .arg(&tests)
        .arg("-q")
        .current_dir(scratch.path())
        .env("FMES_BIN", env!("CARGO_BIN_EXE_fmes"))
        .env("FMES_COMPONENT", &component)
        // The cache the other tests fill: the CLI processes the suite starts
        // then load the compiled component instead of compiling it again.
        .env("FMES_CACHE_DIR", cache_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUTF8", "1")
        .env_remove("FMES_COMM")
        .env_remove("PYTHONPATH")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        output.status.success(),
        "pytest {} failed: {:?}\nstdout:\n{}\nstderr:\n{}",
        tests.display(),
        output.status,
        stdout(&output),
        stderr(&output)
    );
    let out = stdout(&output);
    assert!(
        out.lines().any(|l| l.contains(" passed")),
        "pytest's summary names no passed test:\n{out}"
    );
    println!("{out}");
}
