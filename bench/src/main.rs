//! Runs every benchmark row side by side in one run and prints a table:
//! the sandboxed component (through the `fmes` library), the same queue
//! logic compiled natively (`fmes-queue` on `std::fs`), and the Python
//! implementation of the format.
//!
//! `cargo run --release -p fmes-bench` (see BENCHMARKS.md). Each figure is
//! the median of `RUNS` runs, each in a fresh temporary `_COMM`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fmes::{Comm, Options as CommOptions, SendRequest};
use fmes_queue::{Options, Queue, StdFs};

const RUNS: usize = 5;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // The native binary of the CLI row: start, count one mailbox, exit.
    if args.get(1).map(String::as_str) == Some("native-peek") {
        let queue = Queue::new(StdFs::new(args[2].clone()));
        println!("{}", queue.peek(&args[3])?);
        return Ok(());
    }
    let quick = args.iter().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let fmes_bin = fmes_binary()?;

    println!("| operation | native | component | ratio | Python | Python / component |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for durable in [true, false] {
        let n = if durable { 2_000 } else { 10_000 } / scale;
        let native = median(|| native_sends(n, durable))?;
        let component = median(|| component_sends(n, durable))?;
        // The Python writer never flushes to disk: it is one baseline for both rows.
        let python = Some(median(|| python_sends(n))?);
        row(
            &format!("send ×{n}, {}", if durable { "durable" } else { "--no-sync" }),
            native,
            component,
            python,
        );
    }
    let n = 2_000 / scale;
    row(
        &format!("claim + ack ×{n}"),
        median(|| native_claim_ack(n))?,
        median(|| component_claim_ack(n))?,
        None,
    );
    for size in [1_000, 100_000 / scale] {
        let filled = filled_comm(size)?;
        let path = filled.path().join("_COMM");
        row(
            &format!("peek on {size}"),
            median(|| time(|| native_queue(&path).peek("sink").map(drop)))?,
            median(|| component_op(&path, |c| c.peek("sink").map(drop)))?,
            Some(median(|| python_op("peek", &path))?),
        );
        let limit = if size == 1_000 { None } else { Some(100) };
        let label = match limit {
            None => format!("receive all of {size}"),
            Some(l) => format!("receive first {l} of {size}"),
        };
        row(
            &label,
            median(|| time(|| native_queue(&path).receive("sink", None, limit).map(drop)))?,
            median(|| component_op(&path, |c| c.receive("sink", None, limit).map(drop)))?,
            Some(median(|| python_op("receive", &path))?),
        );
    }
    let filled = filled_comm(1_000)?;
    let path = filled.path().join("_COMM");
    let me = std::env::current_exe()?;
    row(
        "one CLI call: start, peek 1,000, exit",
        median(|| process(Command::new(&me).arg("native-peek").arg(&path).arg("sink")))?,
        median(|| process(Command::new(&fmes_bin).arg("--comm").arg(&path).args(["peek", "sink"])))?,
        Some(median(|| {
            process(
                Command::new("python3")
                    .arg(python_script())
                    .args(["peek"])
                    .arg(&path),
            )
        })?),
    );
    Ok(())
}

fn row(label: &str, native: Duration, component: Duration, python: Option<Duration>) {
    let ratio = component.as_secs_f64() / native.as_secs_f64();
    let (python_text, faster) = match python {
        Some(p) => (
            fmt(p),
            format!("{:.1}× faster", p.as_secs_f64() / component.as_secs_f64()),
        ),
        None => ("-".into(), "-".into()),
    };
    println!(
        "| {label} | {} | {} | {ratio:.2}× | {python_text} | {faster} |",
        fmt(native),
        fmt(component)
    );
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1e6 {
        format!("{:.2} s", us / 1e6)
    } else if us >= 1e3 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{us:.0} µs")
    }
}

fn median(mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut times = (0..RUNS).map(|_| f()).collect::<Result<Vec<_>>>()?;
    times.sort();
    Ok(times[RUNS / 2])
}

fn time(f: impl FnOnce() -> Result<(), fmes_queue::QueueError>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

fn fresh_comm() -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("_COMM");
    std::fs::create_dir(&path)?;
    Queue::new(StdFs::new(path.to_str().unwrap())).init(&["bench".into(), "sink".into()])?;
    Ok((dir, path))
}

fn native_queue(path: &Path) -> Queue<StdFs> {
    Queue::new(StdFs::new(path.to_str().unwrap()))
}

fn native_sends(n: usize, durable: bool) -> Result<Duration> {
    let (_dir, path) = fresh_comm()?;
    let queue = Queue::with_options(
        StdFs::new(path.to_str().unwrap()),
        Options {
            durable,
            ..Options::default()
        },
    );
    let start = Instant::now();
    for i in 0..n {
        queue.send(&SendRequest::new("bench", "sink", format!("{{\"seq\": {i}}}")))?;
    }
    Ok(start.elapsed())
}

fn open_component(path: &Path, durable: bool) -> Result<Comm> {
    let mut comm = Comm::open(path)?;
    comm.set_options(CommOptions {
        durable,
        ..CommOptions::default()
    })?;
    // Instantiate before timing: one warm-up call.
    comm.peek("sink")?;
    Ok(comm)
}

fn component_sends(n: usize, durable: bool) -> Result<Duration> {
    let (_dir, path) = fresh_comm()?;
    let mut comm = open_component(&path, durable)?;
    let start = Instant::now();
    for i in 0..n {
        comm.send(&SendRequest::new("bench", "sink", format!("{{\"seq\": {i}}}")))?;
    }
    Ok(start.elapsed())
}

fn native_claim_ack(n: usize) -> Result<Duration> {
    let (_dir, path) = fresh_comm()?;
    let queue = native_queue(&path);
    for i in 0..n {
        queue.send(&SendRequest::new("bench", "sink", i.to_string()))?;
    }
    let start = Instant::now();
    for _ in 0..n {
        let batch = queue.claim("sink", "w", 1, Duration::from_secs(600))?;
        queue.ack("sink", "w", &batch.claimed[0].message.file)?;
    }
    Ok(start.elapsed())
}

fn component_claim_ack(n: usize) -> Result<Duration> {
    let (_dir, path) = fresh_comm()?;
    let queue = native_queue(&path);
    for i in 0..n {
        queue.send(&SendRequest::new("bench", "sink", i.to_string()))?;
    }
    let mut comm = open_component(&path, true)?;
    let start = Instant::now();
    for _ in 0..n {
        let batch = comm.claim("sink", "w", 1, Duration::from_secs(600))?;
        comm.ack("sink", "w", &batch.claimed[0].message.file)?;
    }
    Ok(start.elapsed())
}

/// A `_COMM` whose mailbox `sink` holds `n` messages.
fn filled_comm(n: usize) -> Result<tempfile::TempDir> {
    let (dir, path) = fresh_comm()?;
    let queue = Queue::with_options(
        StdFs::new(path.to_str().unwrap()),
        Options {
            durable: false,
            ..Options::default()
        },
    );
    for i in 0..n {
        queue.send(&SendRequest::new("bench", "sink", format!("{{\"seq\": {i}}}")))?;
    }
    Ok(dir)
}

fn component_op(
    path: &Path,
    f: impl FnOnce(&mut Comm) -> Result<(), fmes::Error>,
) -> Result<Duration> {
    let mut comm = open_component(path, true)?;
    let start = Instant::now();
    f(&mut comm)?;
    Ok(start.elapsed())
}

fn python_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python_baseline.py")
}

fn python_seconds(command: &mut Command) -> Result<Duration> {
    let output = command.output().context("run python3")?;
    if !output.status.success() {
        bail!("python3 failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let seconds: f64 = String::from_utf8(output.stdout)?.trim().parse()?;
    Ok(Duration::from_secs_f64(seconds))
}

fn python_sends(n: usize) -> Result<Duration> {
    let (_dir, path) = fresh_comm()?;
    python_seconds(
        Command::new("python3")
            .arg(python_script())
            .arg("send")
            .arg(&path)
            .arg(n.to_string()),
    )
}

fn python_op(what: &str, path: &Path) -> Result<Duration> {
    python_seconds(Command::new("python3").arg(python_script()).arg(what).arg(path))
}

fn process(command: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let output = command.output()?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!("{command:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(elapsed)
}

/// The `fmes` binary built beside this one.
fn fmes_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let bin = me.with_file_name("fmes");
    if !bin.is_file() {
        bail!(
            "{} not found: build it first with cargo build --release",
            bin.display()
        );
    }
    Ok(bin)
}
