//! Host bindings for the `fmes:queue` world, generated once here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "queue",
});
