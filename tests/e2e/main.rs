//! End-to-end tests of fmes: the library and the `fmes` binary, each test in
//! its own temporary `_COMM`, every operation through the sandboxed component.

mod support;

mod burst;
mod claims;
mod cli;
mod cli_extras;
mod doctor;
mod guarantees;
mod interop;
mod javascript;
mod library;
mod plugins;
mod python;
mod readme;
mod sandbox;
mod tail;
mod wasmtime_cli;
mod watch;
mod wit_package;
