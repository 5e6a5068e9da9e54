//! Host bindings for the `fmes:queue` package, generated once here: the
//! `queue-hosted` world, the queue's exports plus the entries, folders,
//! listing, reads and writes this host provides (their WASI types are wasmtime-wasi's own).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "queue-hosted",
    with: {
        "wasi:filesystem/types": wasmtime_wasi::p2::bindings::sync::filesystem::types,
        "wasi:io": wasmtime_wasi::p2::bindings::sync::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});
