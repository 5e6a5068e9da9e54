use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, Context};

/// Print a shell completion script for fmes (bash, zsh, fish, elvish, powershell).
///
/// The script is generated from fmes's own command definitions, so it
/// always matches this version. Load it in the running shell, or save it where the shell looks for
/// completions (see the examples).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  source <(fmes completions bash)                                  bash, this shell only
  fmes completions bash > ~/.local/share/bash-completion/completions/fmes
  fmes completions zsh > ~/.zfunc/_fmes                             with fpath+=~/.zfunc
  fmes completions fish > ~/.config/fish/completions/fmes.fish
  fmes completions powershell >> $PROFILE")]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

pub(crate) fn run(_context: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut command = Cli::command();
    // Into memory first: the generator panics on a failed write, and a
    // closed pipe is not an error.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "fmes", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
