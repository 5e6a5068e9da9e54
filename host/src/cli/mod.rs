//! The `fmes` command line: one module per subcommand.

mod ack;
mod agent;
mod agents;
mod archive;
mod broadcast;
mod claim;
mod cleanup;
mod completions;
mod component;
mod dead;
mod demo;
mod doctor;
mod duration;
pub use duration::parse_duration;
mod init;
mod logging;
mod man;
pub(crate) mod output;
mod peek;
mod progress;
mod receive;
mod recover;
mod release;
mod send;
mod stats;
mod tail;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::Comm;

/// Exit code of a failed operation. Bad usage exits with 2 (clap's code).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage (as clap's).
pub const EXIT_USAGE: u8 = 2;

const AFTER_HELP: &str = "\
Examples:
  fmes init                                  create the default mailboxes in ./_COMM
  fmes init planner coder                    create mailboxes for two agents
  fmes send --from planner --to coder '{\"task\": \"write the parser\"}'
  fmes receive coder                         read what waits for coder, in order
  fmes --json receive coder --limit 1        the first message, as one JSON line
  fmes archive coder 5_20261123_101500.123456789Z_planner_TASK_1a2b3c4d0007.json
  fmes watch planner                         print messages for planner as they arrive
  fmes demo                                  see two agents exchange a task and a report
  fmes claim coder --consumer w1 --lease 5m  take the next message for worker w1 alone
  fmes ack coder --consumer w1 FILE          done with it: archive it
  fmes tail                                  every new message in every mailbox, one line each
  fmes doctor                                check the _COMM folder and say what to fix
  fmes -v receive coder                      also log what fmes does (RUST_LOG=debug for more)

Exit status: 0 on success, 1 if the operation failed (for doctor: if it
found problems), 2 on bad usage.
Logs go to stderr: warnings by default, -v info, -vv debug, -vvv trace, -q
errors only; RUST_LOG (e.g. RUST_LOG=fmes=debug) overrides -v and -q.
Progress lines appear on stderr only when it is a terminal.
Every operation runs inside the fmes WebAssembly component, which can reach
the _COMM folder and nothing else.";

/// F-MES file mailboxes for coding agents, through a sandboxed WebAssembly component.
#[derive(Debug, Parser)]
#[command(name = "fmes", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The _COMM folder that holds the mailboxes.
    #[arg(
        long,
        global = true,
        env = "FMES_COMM",
        default_value = "_COMM",
        value_name = "DIR"
    )]
    pub comm: PathBuf,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Do not flush files and folders to disk before reporting success:
    /// faster, but a power loss or OS crash (not a crashed process) can then
    /// lose messages an operation reported done.
    #[arg(long, global = true, env = "FMES_NO_SYNC")]
    pub no_sync: bool,

    /// Deliveries after which an unacknowledged message goes to the dead letters.
    #[arg(long, global = true, env = "FMES_MAX_DELIVERIES", default_value_t = fmes_queue::queue::DEFAULT_MAX_DELIVERIES,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub max_deliveries: u32,

    /// Log more on stderr: -v what fmes does (info), -vv each queue call
    /// (debug), -vvv everything (trace). RUST_LOG, if set, decides instead.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print no warnings and no progress on stderr; errors only.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::Args),
    Agents(agents::Args),
    Send(send::Args),
    Receive(receive::Args),
    Archive(archive::Args),
    Peek(peek::Args),
    Broadcast(broadcast::Args),
    Cleanup(cleanup::Args),
    Claim(claim::Args),
    Ack(ack::Args),
    Release(release::Args),
    Extend(release::ExtendArgs),
    Recover(recover::Args),
    #[command(subcommand)]
    Dead(dead::Command),
    Stats(stats::Args),
    #[command(subcommand)]
    Agent(agent::Command),
    Watch(watch::Args),
    Demo(demo::Args),
    Component(component::Args),
    Tail(tail::Args),
    Doctor(doctor::Args),
    Completions(completions::Args),
    Man(man::Args),
}

/// What every subcommand gets.
pub(crate) struct Context {
    pub comm: PathBuf,
    pub json: bool,
    pub options: crate::Options,
    /// `-q`: no warnings, no progress.
    pub quiet: bool,
}

impl Context {
    /// Opens the `_COMM` folder, which must exist.
    pub fn open(&self) -> anyhow::Result<Comm> {
        let mut comm = Comm::open(&self.comm)?;
        comm.set_options(self.options)?;
        Ok(comm)
    }

    /// True if a status line may be shown on stderr (a terminal, no `-q`).
    pub fn progress_wanted(&self) -> bool {
        progress::wanted(self.quiet)
    }
}

/// Runs a parsed command line; prints any error and returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    if let Err(e) = logging::init(cli.verbose, cli.quiet) {
        output::print_error(&anyhow::anyhow!(e));
        return ExitCode::from(EXIT_USAGE);
    }
    output::set_quiet(cli.quiet);
    let context = Context {
        comm: cli.comm,
        json: cli.json,
        options: crate::Options {
            durable: !cli.no_sync,
            max_deliveries: cli.max_deliveries,
            // Each handle opened gets its own tag (see `Comm`).
            origin: 0,
        },
        quiet: cli.quiet,
    };
    let result = match cli.command {
        Command::Init(args) => init::run(&context, args),
        Command::Agents(args) => agents::run(&context, args),
        Command::Send(args) => send::run(&context, args),
        Command::Receive(args) => receive::run(&context, args),
        Command::Archive(args) => archive::run(&context, args),
        Command::Peek(args) => peek::run(&context, args),
        Command::Broadcast(args) => broadcast::run(&context, args),
        Command::Cleanup(args) => cleanup::run(&context, args),
        Command::Claim(args) => claim::run(&context, args),
        Command::Ack(args) => ack::run(&context, args),
        Command::Release(args) => release::run(&context, args),
        Command::Extend(args) => release::run_extend(&context, args),
        Command::Recover(args) => recover::run(&context, args),
        Command::Dead(command) => dead::run(&context, command),
        Command::Stats(args) => stats::run(&context, args),
        Command::Agent(command) => agent::run(&context, command),
        Command::Watch(args) => watch::run(&context, args),
        Command::Demo(args) => demo::run(&context, args),
        Command::Component(args) => component::run(&context, args),
        Command::Tail(args) => tail::run(&context, args),
        Command::Doctor(args) => doctor::run(&context, args),
        Command::Completions(args) => completions::run(&context, args),
        Command::Man(args) => man::run(&context, args),
    };
    match result {
        Ok(code) => code,
        // A reader that went away (`fmes receive x | head -1`) is not an error.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// A `--consumer` name, checked as the queue checks it, so that a bad one
/// is bad usage (exit 2) like any other bad option.
fn parse_consumer(name: &str) -> Result<String, String> {
    fmes_queue::names::check_agent(name)
        .map(|()| name.to_string())
        .map_err(|_| fmes_queue::QueueError::InvalidConsumer(name.into()).to_string())
}
