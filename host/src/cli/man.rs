use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory;

use super::{Cli, Context};

/// Print the fmes manual page (roff), or write one page per command.
///
/// Without --out, prints fmes(1), the page for the command and its global
/// options, to stdout. With --out DIR, writes fmes.1 and one page per
/// subcommand (fmes-send.1, fmes-dead-list.1, ...) into DIR, creating it if
/// needed, and prints the paths written.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  fmes man | man -l -                    read it now
  fmes man -o ~/.local/share/man/man1    install every page; then `man fmes-send`")]
pub struct Args {
    /// Write every page into this folder instead of printing fmes(1).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub(crate) fn run(_context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let command = Cli::command();
    let mut out = std::io::stdout().lock();
    let Some(dir) = args.out else {
        page(command).render(&mut out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut written = Vec::new();
    write_pages(&command, &dir, &mut written)?;
    for path in written {
        writeln!(out, "{}", path.display())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `command` and of each of its subcommands, depth first.
fn write_pages(
    command: &clap::Command,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let man = page(command.clone());
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

/// The page of one command, naming fmes and its version as the source.
fn page(command: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(command)
        .source(format!("fmes {}", env!("CARGO_PKG_VERSION")))
        .manual("fmes manual")
}
