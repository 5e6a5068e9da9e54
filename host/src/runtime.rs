//! The wasmtime engine, the compiled component (cached on disk, outside any
//! `_COMM`) and its pre-linked instance template.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::QueueHostedPre;
use crate::error::Error;
use crate::sandbox::Sandbox;

/// The queue component for any component runtime (the `queue` world: it
/// imports only WASI), built from `guest/` by the build script: what
/// `fmes component` writes.
pub static COMPONENT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fmes_queue.wasm"));
/// The same queue built for the `queue-hosted` world, which this host runs:
/// it lists folders, reads message files and creates files through the host
/// (`crate::listing`, `crate::reads`, `crate::writes`), many per call.
pub static HOSTED_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fmes_queue_hosted.wasm"));
const HOSTED_COMPONENT_HASH: &str = env!("FMES_COMPONENT_HASH");

/// How often the engine's epoch advances; time limits are counted in these.
const TICK: Duration = Duration::from_millis(10);

/// Limits every call into the component runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time one call may take before it is stopped.
    pub time: Duration,
    /// Bytes of linear memory the component may grow to.
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            time: Duration::from_secs(60),
            memory: 512 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Bytes one call may copy out of the component (wasmtime's "hostcall
    /// fuel", counted by the strings and records the host receives).
    ///
    /// wasmtime 48 allows 128 MiB by default. The queue ends an answer of
    /// many messages at `fmes_queue::queue::ANSWER_BYTES` (64 MiB), but one
    /// message alone may be larger: at the largest file a reader accepts
    /// (64 MiB) its text and its payload come to 128 MiB and a little more.
    /// The component builds every answer in its own memory, so it never
    /// has more to hand over than its memory limit: that is the allowance,
    /// and never less than wasmtime's default.
    pub fn hostcall_fuel(&self) -> usize {
        const WASMTIME_DEFAULT: usize = 128 * 1024 * 1024;
        self.memory.max(WASMTIME_DEFAULT)
    }
}

/// Where compiled components are cached: `$FMES_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/fmes`, else `~/.cache/fmes`; `None` if none is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    let from_env = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from_env("FMES_CACHE_DIR")
        .or_else(|| from_env("XDG_CACHE_HOME").map(|d| d.join("fmes")))
        .or_else(|| from_env("HOME").map(|d| d.join(".cache").join("fmes")))
}

/// A compiled, pre-linked queue component, ready to instantiate cheaply.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) pre: QueueHostedPre<Sandbox>,
    pub(crate) limits: Limits,
    /// The engine plugins run on: like the queue's, plus fuel metering.
    plugin_engine: Engine,
    ticker: Arc<Ticker>,
}

impl Runtime {
    /// Loads the component, from the cache at `cache_dir` when it holds one
    /// compiled by this engine, else by compiling it (and filling the cache).
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> Result<Runtime, Error> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(load_error)?;
        let component = load_component(&engine, cache_dir)?;

        let mut linker = Linker::<Sandbox>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(load_error)?;
        crate::entries::add_to_linker(&mut linker).map_err(load_error)?;
        crate::folders::add_to_linker(&mut linker).map_err(load_error)?;
        crate::listing::add_to_linker(&mut linker).map_err(load_error)?;
        crate::reads::add_to_linker(&mut linker).map_err(load_error)?;
        crate::writes::add_to_linker(&mut linker).map_err(load_error)?;
        let instance_pre = linker.instantiate_pre(&component).map_err(load_error)?;
        let pre = QueueHostedPre::new(instance_pre).map_err(load_error)?;

        let mut plugin_config = Config::new();
        plugin_config.epoch_interruption(true);
        plugin_config.consume_fuel(true);
        let plugin_engine = Engine::new(&plugin_config).map_err(load_error)?;
        let ticker = Ticker::start(vec![engine.clone(), plugin_engine.clone()]);
        Ok(Runtime {
            plugin_engine,
            engine,
            cache_dir: cache_dir.map(Path::to_path_buf),
            pre,
            limits,
            ticker,
        })
    }

    /// One runtime per process, with default limits and cache.
    pub fn shared() -> Result<Arc<Runtime>, Error> {
        static SHARED: OnceLock<Arc<Runtime>> = OnceLock::new();
        if let Some(runtime) = SHARED.get() {
            return Ok(runtime.clone());
        }
        let runtime = Arc::new(Runtime::new(
            Limits::default(),
            default_cache_dir().as_deref(),
        )?);
        Ok(SHARED.get_or_init(|| runtime).clone())
    }

    /// Keeps the epoch advancing until the guard is dropped.
    pub(crate) fn call_in_flight(&self) -> InFlight<'_> {
        self.ticker.update(|state| {
            state.in_flight += 1;
            state.in_flight == 1
        });
        InFlight {
            ticker: &self.ticker,
            _tokio: wasi_tokio().map(|runtime| runtime.enter()),
        }
    }

    /// Epoch ticks that make up the time limit (zero stops a call at once).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        self.deadline_ticks_for(self.limits.time)
    }

    /// Epoch ticks that make up a given time limit.
    pub(crate) fn deadline_ticks_for(&self, limit: Duration) -> u64 {
        (limit.as_millis() / TICK.as_millis()) as u64
    }

    /// The engine, for embedders that run other components beside the queue.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The engine agent plugins run on (fuel metering on).
    pub(crate) fn plugin_engine(&self) -> &Engine {
        &self.plugin_engine
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker.update(|state| {
            state.stop = true;
            true
        });
    }
}

/// Advances the engine's epoch every tick while any call is in flight, so a
/// call past its deadline traps, and sleeps otherwise (an idle `fmes watch`
/// costs no wake-ups).
pub(crate) struct Ticker {
    state: Mutex<TickerState>,
    wake: Condvar,
}

#[derive(Default)]
struct TickerState {
    in_flight: usize,
    stop: bool,
    /// The thread waits on the condition variable (no call in flight): only
    /// then does a change need to wake it. Calls come and go thousands of
    /// times a second, and a wake-up for each was two system calls and a
    /// trip to the other core.
    waiting: bool,
}

impl Ticker {
    fn start(engines: Vec<Engine>) -> Arc<Ticker> {
        let ticker = Arc::new(Ticker {
            state: Mutex::new(TickerState::default()),
            wake: Condvar::new(),
        });
        let shared = ticker.clone();
        std::thread::Builder::new()
            .name("fmes-epoch".into())
            .spawn(move || {
                loop {
                    let mut state = shared.lock();
                    while state.in_flight == 0 && !state.stop {
                        state.waiting = true;
                        state = shared
                            .wake
                            .wait(state)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                        state.waiting = false;
                    }
                    if state.stop {
                        return;
                    }
                    drop(state);
                    std::thread::sleep(TICK);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawn the epoch thread");
        ticker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TickerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the state; `change` says whether the thread should look at
    /// it now (it is woken only if it waits).
    fn update(&self, change: impl FnOnce(&mut TickerState) -> bool) {
        let mut state = self.lock();
        if change(&mut state) && state.waiting {
            drop(state);
            self.wake.notify_all();
        }
    }
}

/// A call in flight; see [`Runtime::call_in_flight`].
pub(crate) struct InFlight<'a> {
    ticker: &'a Ticker,
    /// wasmtime-wasi's synchronous calls run on the Tokio runtime the
    /// calling thread has entered.
    _tokio: Option<tokio::runtime::EnterGuard<'static>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // The thread finds no call in flight after its tick and waits.
        self.ticker.update(|state| {
            state.in_flight -= 1;
            false
        });
    }
}

/// The Tokio runtime that wasmtime-wasi's synchronous calls run on, entered
/// around every call into a component; `None` if it could not be made (then
/// wasmtime-wasi makes its own).
///
/// wasmtime-wasi's own, made on a process's first file-system call, has a
/// worker thread per core and first reads the cgroup files to count them:
/// 0.2 to 0.6 ms, a tenth of a whole CLI call. It also yields to Tokio once
/// per call, for sockets' sake, which no queue has. One worker is enough: it
/// drives the timer of a guest that sleeps (the caller blocks meanwhile),
/// and the file calls run on the calling thread.
fn wasi_tokio() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("fmes-wasi")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// This host's and process's tag for the names it creates: a hash of the
/// host name and the process id (the component cannot see either).
pub fn process_origin() -> u32 {
    static ORIGIN: OnceLock<u32> = OnceLock::new();
    *ORIGIN.get_or_init(|| {
        let mut hasher = DefaultHasher::new();
        host_name().hash(&mut hasher);
        std::process::id().hash(&mut hasher);
        let hash = hasher.finish();
        // 0 asks the component for a random tag.
        ((hash >> 32) as u32 ^ hash as u32).max(1)
    })
}

fn host_name() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname writes a
        // NUL-terminated name into it, truncated if needed.
        if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..end]).into_owned();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_default()
}

/// The names of the interfaces a queue component (`COMPONENT` or
/// `HOSTED_COMPONENT`) imports, for checking what it could reach at most.
pub fn component_imports(bytes: &[u8]) -> Result<Vec<String>, Error> {
    let engine = Engine::new(&Config::new()).map_err(load_error)?;
    let component = Component::new(&engine, bytes).map_err(load_error)?;
    Ok(component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_string())
        .collect())
}

fn load_error(e: impl std::fmt::Display) -> Error {
    Error::Load(format!("{e:#}"))
}

fn load_component(engine: &Engine, cache_dir: Option<&Path>) -> Result<Component, Error> {
    compile_cached(
        engine,
        cache_dir,
        "queue",
        HOSTED_COMPONENT_HASH,
        HOSTED_COMPONENT,
    )
    .map_err(load_error)
}

/// Compiles a component, or loads it from `cache_dir` where this engine
/// compiled the same bytes before; `kind` and `content_hash` name the entry.
pub(crate) fn compile_cached(
    engine: &Engine,
    cache_dir: Option<&Path>,
    kind: &str,
    content_hash: &str,
    bytes: &[u8],
) -> wasmtime::Result<Component> {
    let started = std::time::Instant::now();
    let Some(cache_dir) = cache_dir else {
        let component = Component::new(engine, bytes)?;
        tracing::info!(
            kind,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "compiled the {kind} component in memory (no cache folder)"
        );
        return Ok(component);
    };
    // The key covers the component's bytes and everything about the engine
    // that makes compiled code incompatible (version, settings, CPU features).
    let mut hasher = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let path = cache_dir.join(format!(
        "{kind}-{content_hash}-{:016x}.cwasm",
        hasher.finish()
    ));
    if path.is_file() {
        // SAFETY: the file is one this code wrote (atomically) for these exact
        // bytes and engine into the user's own cache directory; deserializing
        // trusts it as compiled code, so the cache directory must not be
        // writable by anyone the user does not trust.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                tracing::info!(kind, path = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded the {kind} component from the cache");
                return Ok(component);
            }
            Err(e) => {
                tracing::debug!(kind, path = %path.display(), "unusable cache entry, compiling: {e:#}")
            }
        }
    }
    let component = Component::new(engine, bytes)?;
    tracing::info!(
        kind,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "compiled the {kind} component (not in the cache yet)"
    );
    // The cache only saves time: failing to write it is not an error.
    if let Ok(serialized) = component.serialize() {
        match write_atomically(cache_dir, &path, &serialized) {
            Ok(()) => {
                tracing::debug!(kind, path = %path.display(), "cached the compiled {kind} component")
            }
            Err(e) => {
                tracing::warn!(kind, path = %path.display(), "cannot cache the compiled {kind} component: {e}")
            }
        }
    }
    Ok(component)
}

/// A content hash for cache names (FNV-1a, 64 bits, with the length).
pub(crate) fn content_hash(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}{:x}", bytes.len())
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
