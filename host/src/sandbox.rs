//! The sandbox one component instance runs in: exactly one preopen (the
//! `_COMM` folder as `/_COMM`), no environment, no arguments, no stdin, no
//! network, stdout discarded, stderr captured up to a cap, and a memory limit.

use std::path::Path;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Where the component finds the queue's root.
pub const GUEST_ROOT: &str = "/_COMM";
/// How much of the component's stderr is kept (its panic message, if any).
const STDERR_CAP: usize = 16 * 1024;

/// File I/O of the sandbox's descriptors runs on the calling thread, not on
/// a blocking pool: for the preopen, and for the folders `folders.rs` opens.
pub(crate) const ALLOW_BLOCKING_CURRENT_THREAD: bool = true;

/// The state of one store.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: MemoryCap,
    stderr: MemoryOutputPipe,
}

impl Sandbox {
    pub fn new(comm: &Path, memory_limit: usize) -> Result<Sandbox, String> {
        let stderr = MemoryOutputPipe::new(STDERR_CAP);
        let mut wasi = WasiCtxBuilder::new();
        // Must come before preopened_dir to apply to it: file I/O runs on
        // this thread rather than being handed to a blocking pool.
        wasi.allow_blocking_current_thread(ALLOW_BLOCKING_CURRENT_THREAD);
        wasi.stderr(stderr.clone());
        // The builder starts with no env, args, stdin or network (no socket
        // address is allowed and name lookup is off); keep it that way.
        wasi.preopened_dir(comm, GUEST_ROOT, FsPerms::ReadWrite)
            .map_err(|e| format!("preopen {}: {e}", comm.display()))?;
        Ok(Sandbox {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: MemoryCap::new(memory_limit),
            stderr,
        })
    }

    /// What the component wrote to stderr, lossily decoded and stripped of
    /// control characters, since it is shown to a person.
    pub fn stderr_text(&self) -> String {
        let bytes = self.stderr.contents();
        String::from_utf8_lossy(&bytes)
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect::<String>()
            .trim()
            .to_string()
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory, and remembers that a growth past the cap was
/// refused so the resulting trap can be reported as the memory limit.
pub struct MemoryCap {
    limit: usize,
    pub exceeded: bool,
}

impl MemoryCap {
    pub fn new(limit: usize) -> MemoryCap {
        MemoryCap {
            limit,
            exceeded: false,
        }
    }
}

/// Table elements a component may grow to: far more than the queue needs,
/// few enough that tables cannot be used to exhaust the host.
const TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.exceeded = true;
            // An error (rather than `Ok(false)`) traps at once instead of
            // letting the allocator see a failed grow and abort less clearly.
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        4
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}
