//! Log output through `tracing`, on stderr: `-v`/`-q` choose the level,
//! `RUST_LOG` (when set) decides instead.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// The filter for a `-v` count, or for `-q`. Only fmes's own crates get
/// chattier with `-v` and `-vv`: the runtime's crates log every host call at
/// debug level. `-vvv` opens everything up to debug.
pub fn default_filter(verbose: u8, quiet: bool) -> &'static str {
    if quiet {
        return "error";
    }
    match verbose {
        0 => "warn",
        1 => "warn,fmes=info,fmes_queue=info",
        2 => "warn,fmes=debug,fmes_queue=debug",
        _ => "debug,fmes=trace,fmes_queue=trace",
    }
}

/// Installs the stderr logger. `RUST_LOG`, if set and not empty, overrides
/// `-v`/`-q`; an invalid `RUST_LOG` is an error (bad usage).
pub fn init(verbose: u8, quiet: bool) -> Result<(), String> {
    let directives = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => value,
        _ => default_filter(verbose, quiet).to_string(),
    };
    let filter = EnvFilter::builder()
        .parse(&directives)
        .map_err(|e| format!("invalid RUST_LOG {directives:?}: {e}"))?;
    let ansi = std::io::stderr().is_terminal() && !no_color();
    // Fails only if a logger is already installed, which keeps that one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(ansi)
        .try_init();
    Ok(())
}

/// True if `NO_COLOR` is set to anything but the empty string (no-color.org).
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}
