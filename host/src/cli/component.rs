use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::Context;

/// Write the fmes queue component for other runtimes to embed: wasmtime,
/// Python's wasmtime, jco in Node, ...
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  fmes component -o fmes_queue.wasm     write it to a file
  fmes component > fmes_queue.wasm      the same, through stdout

The component exports the fmes:queue@0.1.0 interfaces (world queue, see
wit/queue.wit) and imports only WASI 0.2, with its mailboxes under the preopen
/_COMM. (This CLI runs the same queue built for the world queue-hosted, which
also lists, reads and writes files through the host: wit/hosted.wit.)")]
pub struct Args {
    /// The file to write (replaced if it exists); stdout when not given.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn run(_context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let bytes = crate::runtime::COMPONENT;
    match args.output {
        Some(path) => {
            // Written beside the target and renamed, so a reader never sees half a file.
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let mut tmp = tempfile::NamedTempFile::new_in(&dir)
                .with_context(|| format!("create a file in {}", dir.display()))?;
            tmp.write_all(bytes)
                .with_context(|| format!("write {}", path.display()))?;
            tmp.persist(&path)
                .with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            if std::io::IsTerminal::is_terminal(&out) {
                anyhow::bail!(
                    "stdout is a terminal: give --output FILE, or redirect stdout to a file"
                );
            }
            out.write_all(bytes)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
