//! Host bindings for the `agent-plugin` world, generated once here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "agent-plugin",
});
