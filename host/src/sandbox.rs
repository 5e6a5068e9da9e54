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

/// Caps the linear memory of a store, all its memories together, and
/// remembers that a growth past the cap was refused so the resulting trap
/// can be reported as the memory limit. Tables are capped the same way, in
/// elements.
pub struct MemoryCap {
    limit: usize,
    /// Bytes of every memory of the store, as grown so far.
    memory_used: usize,
    /// Elements of every table of the store.
    table_elements: usize,
    pub exceeded: bool,
}

impl MemoryCap {
    pub fn new(limit: usize) -> MemoryCap {
        MemoryCap {
            limit,
            memory_used: 0,
            table_elements: 0,
            exceeded: false,
        }
    }
}

/// Table elements a store may grow its tables to, all together: far more
/// than a component needs, few enough (8 to 16 MiB) that tables cannot be
/// used to exhaust the host.
const TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Called for each memory as it is made (from 0) and grown: the
        // store's total is what the cap bounds, or several memories would
        // each take the whole of it.
        let total = (self.memory_used - current.min(self.memory_used)).saturating_add(desired);
        if total > self.limit {
            self.exceeded = true;
            // An error (rather than `Ok(false)`) traps at once instead of
            // letting the allocator see a failed grow and abort less clearly.
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total =
            (self.table_elements - current.min(self.table_elements)).saturating_add(desired);
        if total > TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_elements = total;
        Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_memory_limit_bounds_all_memories_together() {
        let mut cap = MemoryCap::new(64 * MIB);
        // Two memories made (from 0) and grown: together up to the limit.
        assert!(cap.memory_growing(0, 40 * MIB, None).unwrap());
        assert!(cap.memory_growing(0, 20 * MIB, None).unwrap());
        assert!(cap.memory_growing(20 * MIB, 24 * MIB, None).unwrap());
        assert!(!cap.exceeded);
        // A third, or growing either, would pass it.
        assert!(cap.memory_growing(0, 1, None).is_err());
        assert!(cap.exceeded);
        assert!(cap.memory_growing(40 * MIB, 40 * MIB + 1, None).is_err());
    }

    #[test]
    fn tables_are_bounded_together_in_elements() {
        let mut cap = MemoryCap::new(64 * MIB);
        assert!(cap.table_growing(0, TABLE_ELEMENTS / 2, None).unwrap());
        assert!(cap.table_growing(0, TABLE_ELEMENTS / 2, None).unwrap());
        assert!(!cap.table_growing(0, 1, None).unwrap());
        assert!(
            !cap.table_growing(TABLE_ELEMENTS / 2, TABLE_ELEMENTS / 2 + 1, None)
                .unwrap()
        );
    }
}
