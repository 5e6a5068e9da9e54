//! Builds the guest crate as `wasm32-wasip2` components with a nested cargo
//! (its own target dir, so it never waits on the outer build's lock) and
//! hands them to the host as `$OUT_DIR/fmes_queue.wasm` (the `queue` world,
//! for any runtime) and `$OUT_DIR/fmes_queue_hosted.wasm` (the
//! `queue-hosted` world, which this host runs).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        // The workspace's dependency versions and features the guest takes.
        "Cargo.toml",
        "wit",
        "Cargo.lock",
        "plugins/Cargo.toml",
        "plugins/Cargo.lock",
        "plugins/sdk",
        "plugins/examples",
        "plugins/fixtures",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if !target_installed(&rustc) {
        println!(
            "cargo::error=the Rust target {TARGET} is not installed, and the fmes guest component is built for it. Install it with: rustup target add {TARGET}"
        );
        return;
    }

    // The queue twice from one source: for any runtime (the `queue` world),
    // and as this host runs it (`queue-hosted`: listings, reads and writes
    // through the host). Built one after the other into one target dir (only the guest
    // crate itself differs), each copied out before the next replaces it.
    let guest_target_dir = shared_target_dir(&out_dir).join("guest");
    let built = guest_target_dir
        .join(TARGET)
        .join("release")
        .join("fmes_queue.wasm");
    let mut hosted_bytes = Vec::new();
    for (features, file) in [
        (None, "fmes_queue.wasm"),
        (Some("hosted"), "fmes_queue_hosted.wasm"),
    ] {
        if !cargo_build(
            &workspace.join("Cargo.toml"),
            Some("fmes-queue"),
            features,
            &guest_target_dir,
        ) {
            println!(
                "cargo::error=building the fmes guest component ({file}) for {TARGET} failed; see the cargo output above"
            );
            return;
        }
        let bytes =
            std::fs::read(&built).unwrap_or_else(|e| panic!("read {}: {e}", built.display()));
        std::fs::write(out_dir.join(file), &bytes).expect("copy the component to OUT_DIR");
        hosted_bytes = bytes;
    }
    // A content hash names the compiled-artifact cache entry of the component
    // the host runs, so a changed component is never served from a stale cache.
    println!(
        "cargo:rustc-env=FMES_COMPONENT_HASH={:016x}",
        fnv1a(&hosted_bytes)
    );
    // The agent plugins (the example agents and the hostile fixtures the
    // tests run) are a workspace of their own, for wasm only.
    let plugins_target_dir = shared_target_dir(&out_dir).join("plugins");
    if !cargo_build(
        &workspace.join("plugins/Cargo.toml"),
        None,
        None,
        &plugins_target_dir,
    ) {
        println!(
            "cargo::error=building the agent plugins for {TARGET} failed; see the cargo output above"
        );
        return;
    }
    println!(
        "cargo:rustc-env=FMES_PLUGINS_DIR={}",
        plugins_target_dir.join(TARGET).join("release").display()
    );
}

/// Builds a manifest's packages (or one, with `features`) for the wasm
/// target in release mode into `target_dir`; false if cargo failed.
fn cargo_build(
    manifest: &Path,
    package: Option<&str>,
    features: Option<&str>,
    target_dir: &Path,
) -> bool {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", TARGET])
        .arg("--manifest-path")
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        // Components need no debug info; it only makes them bigger.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false");
    if let Some(package) = package {
        build.args(["--package", package]);
    }
    if let Some(features) = features {
        build.args(["--features", features]);
    }
    // Settings meant for the outer (native) build must not leak into this one.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        build.env_remove(var);
    }
    build.status().is_ok_and(|status| status.success())
}

/// True if the standard library for the wasm target is installed for this rustc.
fn target_installed(rustc: &std::ffi::OsStr) -> bool {
    let Ok(output) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

/// The outer build's target directory (the one cargo marks with
/// CACHEDIR.TAG), so debug and release builds share one guest build.
fn shared_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|dir| dir.join("CACHEDIR.TAG").is_file())
        .unwrap_or(out_dir)
        .to_path_buf()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}
