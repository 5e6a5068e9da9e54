//! The sandbox one component instance runs in: exactly one preopen (the
//! `_COMM` folder as `/_COMM`), no environment, no arguments, no stdin, no
//! network, stdout discarded, stderr captured up to a cap, and a memory limit.

use std::path::Path;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Where the component finds the queue's root.
pub const GUEST_ROOT: &str = "/_COMM";
/// How much of the component's stderr is kept (its panic message, if any).
const STDERR_CAP: usize = 16 * 1024;

/// The state of one store.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    stderr: MemoryOutputPipe,
}

impl Sandbox {
    pub fn new(comm: &Path, memory_limit: usize) -> Result<Sandbox, String> {
        let stderr = MemoryOutputPipe::new(STDERR_CAP);
        let mut wasi = WasiCtxBuilder::new();
        // Must come before preopened_dir to apply to it: file I/O runs on
        // this thread rather than being handed to a blocking pool.
        wasi.allow_blocking_current_thread(true);
        wasi.stderr(stderr.clone());
        // The builder starts with no env, args, stdin or network (no socket
        // address is allowed and name lookup is off); keep it that way.
        wasi.preopened_dir(comm, GUEST_ROOT, FsPerms::ReadWrite)
            .map_err(|e| format!("preopen {}: {e}", comm.display()))?;
        Ok(Sandbox {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(memory_limit)
                .instances(4)
                .tables(16)
                .memories(4)
                .trap_on_grow_failure(true)
                .build(),
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
