//! Runs every benchmark row side by side in one run and prints a table:
//! the sandboxed component (through the `fmes` library), the same queue
//! logic compiled natively (`fmes-queue` on `std::fs`), and the Python
//! implementation of the format.
//!
//! `cargo run --release -p fmes-bench` (see BENCHMARKS.md). Each figure is
//! the median of `RUNS` runs (nearly twice as many for sends, three times as
//! many for the reading rows on 1,000 messages), native and component in
//! turns.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fmes::{Comm, Options as CommOptions, SendRequest};
use fmes_queue::{Options, Queue, StdFs};

mod floor;

const RUNS: usize = 5;

const USAGE: &str = "\
Runs every row of BENCHMARKS.md side by side and prints the tables.

Usage: fmes-bench [--quick] [--only WORD]

  --quick       a tenth of the messages (a check that it runs, not figures)
  --only WORD   only the rows whose label contains WORD (e.g. send, peek)
  -h, --help    this text

Messages are written under $TMPDIR (TMPDIR=/dev/shm measures on tmpfs).
";

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    // The native binary of the CLI row: start, count one mailbox, exit.
    if args.get(1).map(String::as_str) == Some("native-peek") {
        let queue = Queue::new(StdFs::new(args[2].clone()));
        println!("{}", queue.peek(&args[3])?);
        return Ok(());
    }
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    // Refuse what it does not know rather than run ten minutes ignoring it.
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" => {}
            "--only" => {
                if rest.next().is_none() {
                    bail!("--only needs a word of a row's label (try --help)");
                }
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only WORD`: the rows whose label contains WORD (to profile one).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let wanted = |label: &str| only.as_deref().is_none_or(|w| label.contains(w));
    let scale = if quick { 10 } else { 1 };
    let fmes_bin = fmes_binary()?;

    let mut floors = Vec::new();
    println!("| operation | native | component | ratio | Python | Python / component |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for durable in [true, false] {
        let n = if durable { 2_000 } else { 10_000 } / scale;
        if !wanted(if durable {
            "send durable"
        } else {
            "send --no-sync"
        }) {
            continue;
        }
        // The Python writer never flushes to disk: it is one baseline for both rows.
        let python = median(|| python_sends(n))?;
        // Sends are the rows the disk moves most (a run's system time can
        // triple from one second to the next): more runs.
        let runs = 2 * RUNS - 1;
        let native_run = &mut || native_sends(n, durable);
        let component_run = &mut || component_sends(n, durable);
        let (native, component) = if durable {
            paired_medians_of(runs, native_run, component_run)?
        } else {
            let [native, component, floor] = medians_in_turns(
                runs,
                [native_run, component_run, &mut || {
                    let (_dir, path) = fresh_comm()?;
                    floor::sends(&path.join("To_Sink"), n)
                }],
            )?;
            floors.push(Floor {
                label: format!("send ×{n}, --no-sync"),
                floor,
                native,
                python,
                goal: 10.0,
            });
            (native, component)
        };
        let python = Some(python);
        row(
            &format!(
                "send ×{n}, {}",
                if durable { "durable" } else { "--no-sync" }
            ),
            native,
            component,
            python,
        );
    }
    let n = 2_000 / scale;
    if wanted("claim + ack") {
        let (native, component) =
            paired_medians(|| native_claim_ack(n), || component_claim_ack(n))?;
        row(&format!("claim + ack ×{n}"), native, component, None);
    }
    for size in [1_000, 100_000 / scale] {
        let peek_label = format!("peek on {size}");
        let receive_labels: Vec<(String, Option<u32>)> = if size == 1_000 {
            vec![(format!("receive all of {size}"), None)]
        } else {
            // The Python reader has no limit: its time is the same for both.
            vec![
                (format!("receive all of {size}"), None),
                (format!("receive first 100 of {size}"), Some(100)),
            ]
        };
        if !wanted(&peek_label) && !receive_labels.iter().any(|(label, _)| wanted(label)) {
            continue;
        }
        let (_filled, path) = filled_comm(size)?;
        // Reading rows take milliseconds: more runs where they are short.
        let runs = if size == 1_000 { 3 * RUNS } else { RUNS };
        let mailbox = path.join("To_Sink");
        if wanted(&peek_label) {
            let [native, component, floor] = medians_in_turns(
                runs,
                [
                    &mut || time(|| native_queue(&path).peek("sink").map(drop)),
                    &mut || component_op(&path, |c| c.peek("sink").map(drop)),
                    &mut || floor::count(&mailbox),
                ],
            )?;
            let python = median(|| python_op("peek", &path))?;
            row(&peek_label, native, component, Some(python));
            floors.push(Floor {
                label: peek_label,
                floor,
                native,
                python,
                goal: 10.0,
            });
        }
        let mut python_receive = None;
        for (label, limit) in receive_labels {
            if !wanted(&label) {
                continue;
            }
            let [native, component, floor] = medians_in_turns(
                runs,
                [
                    &mut || time(|| native_queue(&path).receive("sink", None, limit).map(drop)),
                    &mut || component_op(&path, |c| c.receive("sink", None, limit).map(drop)),
                    &mut || floor::read(&mailbox, limit.map(|l| l as usize)),
                ],
            )?;
            let python = match python_receive {
                Some(python) => python,
                None => {
                    let python = median(|| python_op("receive", &path))?;
                    python_receive = Some(python);
                    python
                }
            };
            row(&label, native, component, Some(python));
            floors.push(Floor {
                label,
                floor,
                native,
                python,
                goal: if limit.is_some() { 100.0 } else { 10.0 },
            });
        }
    }
    if wanted("one CLI call") {
        cli_row(&fmes_bin)?;
    }
    if wanted("plugin runner") {
        // One run on 100,000: each takes a minute on the disk.
        for (n, runs) in [(1_000 / scale, RUNS), (100_000 / scale, 1)] {
            let (native, plugin) =
                paired_medians_of(runs, || native_handler(n), || plugin_runner(n))?;
            println!(
                "| plugin runner, trivial handler ×{n} | {:.0}/s | {:.0}/s | {:.2}× the rate | - | - |",
                n as f64 / native.as_secs_f64(),
                n as f64 / plugin.as_secs_f64(),
                native.as_secs_f64() / plugin.as_secs_f64()
            );
        }
    }
    if wanted("watch") {
        let (p50, p99) = watch_latency(&fmes_bin, 200 / scale)?;
        println!(
            "| watch: send to printed, over {} messages | - | p50 {} / p99 {} | - | - | - |",
            200 / scale,
            fmt(p50),
            fmt(p99)
        );
    }
    if wanted("peak memory") {
        memory_rows(&fmes_bin, scale)?;
    }
    if !floors.is_empty() {
        floor_rows(&floors);
    }
    Ok(())
}

/// A row's floor (its system calls alone), beside its native and Python times.
struct Floor {
    label: String,
    floor: Duration,
    native: Duration,
    python: Duration,
    /// How many times faster than Python issue 5 asks the component to be.
    goal: f64,
}

/// The floor table: how much faster than Python any implementation could be.
fn floor_rows(floors: &[Floor]) {
    println!();
    println!(
        "| operation | floor: the system calls alone | native | Python | Python / floor: the most any implementation could be faster | goal |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for f in floors {
        println!(
            "| {} | {} | {} | {} | {:.1}× | {:.0}× |",
            f.label,
            fmt(f.floor),
            fmt(f.native),
            fmt(f.python),
            f.python.as_secs_f64() / f.floor.as_secs_f64(),
            f.goal
        );
    }
}

/// Peak memory (maximum resident set) of whole `fmes` processes on a small
/// and a large mailbox: it should not grow with the mailbox.
fn memory_rows(fmes_bin: &Path, scale: usize) -> Result<()> {
    let small = 1_000;
    let large = 100_000 / scale;
    let (_small_dir, small_path) = filled_comm(small)?;
    let (_large_dir, large_path) = filled_comm(large)?;
    let spin = plugin_path("fixture_spin")?;
    // Once before measuring, so no row pays for compiling into the cache.
    peak_rss(
        Command::new(fmes_bin)
            .arg("--comm")
            .arg(&small_path)
            .args(["peek", "sink"]),
    )?;
    println!();
    println!("| peak memory of one `fmes` process | {small} messages | {large} messages |");
    println!("| --- | --- | --- |");
    let cases: [(&str, Vec<String>); 6] = [
        ("peek", vec!["peek".into(), "sink".into()]),
        (
            "receive --limit 100",
            ["receive", "sink", "--limit", "100"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "receive: prints them all",
            vec!["receive".into(), "sink".into()],
        ),
        ("stats", vec!["stats".into()]),
        (
            "doctor: reads them all",
            ["doctor", "--max-waiting", "1000000"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "agent run (trivial plugin) --once: handles them all",
            vec![
                "agent".into(),
                "run".into(),
                spin.to_string_lossy().into_owned(),
                "--as".into(),
                "sink".into(),
                "--once".into(),
            ],
        ),
    ];
    for (label, args) in cases {
        if label.starts_with("agent run") {
            // Before the runner empties the mailboxes.
            for (label, follow) in [
                ("watch --waiting", &["watch", "sink", "--waiting"][..]),
                ("tail --waiting (every mailbox)", &["tail", "--waiting"][..]),
            ] {
                let peaks = [
                    watcher_peak_rss(fmes_bin, &small_path, small, follow)?,
                    watcher_peak_rss(fmes_bin, &large_path, large, follow)?,
                ];
                println!(
                    "| {label}: prints them all | {:.1} MiB | {:.1} MiB |",
                    peaks[0] as f64 / 1024.0,
                    peaks[1] as f64 / 1024.0
                );
            }
        }
        let mut peaks = Vec::new();
        for path in [&small_path, &large_path] {
            peaks.push(peak_rss(
                Command::new(fmes_bin)
                    .arg("--comm")
                    .arg(path)
                    .arg("--no-sync")
                    .args(&args),
            )?);
        }
        println!(
            "| {label} | {:.1} MiB | {:.1} MiB |",
            peaks[0] as f64 / 1024.0,
            peaks[1] as f64 / 1024.0
        );
    }
    let mut peaks = Vec::new();
    for n in [small, large] {
        let (_dir, path) = dead_lettered_comm(n)?;
        peaks.push(peak_rss(
            Command::new(fmes_bin)
                .arg("--comm")
                .arg(&path)
                .args(["dead", "list", "sink"]),
        )?);
    }
    println!(
        "| dead list, as many dead letters: prints them all | {:.1} MiB | {:.1} MiB |",
        peaks[0] as f64 / 1024.0,
        peaks[1] as f64 / 1024.0
    );
    println!();
    Ok(())
}

/// A `_COMM` whose agent `sink` has `n` dead letters: files that are not
/// messages, which one claim moves to the dead letters.
fn dead_lettered_comm(n: usize) -> Result<(RunFolder, PathBuf)> {
    let (dir, path) = fresh_comm()?;
    let inbox = path.join("To_Sink");
    for i in 0..n {
        std::fs::write(inbox.join(format!("{i:06}_broken.json")), "not JSON")?;
    }
    let queue = Queue::with_options(
        StdFs::new(path.to_str().unwrap()),
        Options {
            durable: false,
            ..Options::default()
        },
    );
    let batch = queue.claim("sink", "bench", 1, Duration::from_secs(60))?;
    if batch.dead_lettered.len() != n {
        bail!(
            "{} of {n} files were dead-lettered",
            batch.dead_lettered.len()
        );
    }
    Ok((dir, path))
}

/// Runs a command to its end (output discarded) under GNU time and returns
/// its peak resident memory in KiB. Not measured from this process: a child
/// started from it inherits this process's own high-water mark at exec.
fn peak_rss(command: &mut Command) -> Result<u64> {
    let mut timed = Command::new("/usr/bin/time");
    timed.args(["-f", "%M"]).arg(command.get_program());
    timed.args(command.get_args());
    let output = timed
        .stdout(std::process::Stdio::null())
        .output()
        .context("run /usr/bin/time (GNU time) for the memory rows")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{command:?} failed: {stderr}");
    }
    let last = stderr.lines().last().unwrap_or_default();
    last.trim()
        .parse()
        .with_context(|| format!("GNU time printed {last:?}"))
}

/// Peak resident memory in KiB of `fmes --json <follow>` (`watch` or
/// `tail` with `--waiting`) once it has printed the `n` messages waiting
/// (it runs until stopped, so GNU time cannot measure it: its high-water
/// mark is read from /proc).
fn watcher_peak_rss(fmes_bin: &Path, comm: &Path, n: usize, follow: &[&str]) -> Result<u64> {
    use std::io::BufRead;
    let mut watcher = Command::new(fmes_bin)
        .arg("--comm")
        .arg(comm)
        .arg("--json")
        .args(follow)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("start fmes watch")?;
    let stdout = watcher.stdout.take().context("the watcher's output")?;
    let printed = std::io::BufReader::new(stdout).lines().take(n).count();
    let status = std::fs::read_to_string(format!("/proc/{}/status", watcher.id()));
    let _ = watcher.kill();
    let _ = watcher.wait();
    if printed < n {
        bail!("fmes {follow:?} printed {printed} of {n} messages");
    }
    let status = status.context("read the watcher's /proc status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .context("no VmHWM in /proc status")?;
    line.split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("unreadable {line:?}"))
}

/// A plugin fixture built beside this binary.
fn plugin_path(name: &str) -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me
        .parent()
        .and_then(Path::parent)
        .context("the target folder")?
        .join(format!("plugins/wasm32-wasip2/release/{name}.wasm")))
}

/// One CLI call, start to exit, against a native binary doing the same.
fn cli_row(fmes_bin: &Path) -> Result<()> {
    let (_filled, path) = filled_comm(1_000)?;
    let me = std::env::current_exe()?;
    row(
        "one CLI call: start, peek 1,000, exit",
        median(|| process(Command::new(&me).arg("native-peek").arg(&path).arg("sink")))?,
        median(|| {
            process(
                Command::new(fmes_bin)
                    .arg("--comm")
                    .arg(&path)
                    .args(["peek", "sink"]),
            )
        })?,
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

/// A mailbox of `n` messages handled natively: claim a batch, a trivial
/// handler, acknowledge (what the plugin runner does, without the sandbox).
fn native_handler(n: usize) -> Result<Duration> {
    let (_dir, path) = filled_comm(n)?;
    let queue = native_queue(&path);
    let start = Instant::now();
    // As the runner does: batches paced by what claiming costs, each
    // message handled and acked.
    let mut pacing = fmes::plugin::ClaimPacing::new();
    loop {
        let claiming = Instant::now();
        let batch = queue.claim("sink", "w", pacing.size(), Duration::from_secs(600))?;
        let claimed_at = Instant::now();
        if batch.claimed.is_empty() {
            break;
        }
        let claimed = batch.claimed.len() as u32;
        let bytes: u64 = batch
            .claimed
            .iter()
            .map(|c| c.message.raw.len() as u64)
            .sum();
        for claimed in batch.claimed {
            std::hint::black_box(&claimed.message.payload);
            queue.ack("sink", "w", &claimed.message.file)?;
        }
        pacing.record(claimed_at - claiming, claimed_at.elapsed(), claimed, bytes);
    }
    Ok(start.elapsed())
}

/// The same mailbox handled by `fmes agent run --once` of a trivial plugin
/// (the spin fixture, whose handler returns at once for these payloads).
fn plugin_runner(n: usize) -> Result<Duration> {
    let (_dir, path) = filled_comm(n)?;
    let plugin = plugin_path("fixture_spin")?;
    let bytes = std::fs::read(&plugin).with_context(|| format!("read {}", plugin.display()))?;
    let mut runner = fmes::plugin::AgentRunner::from_bytes(
        fmes::Runtime::shared()?,
        &bytes,
        "the spin fixture",
        &path,
        "sink",
        fmes::plugin::Policy::default(),
    )?;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let start = Instant::now();
    let report = runner.run(true, &stop, |_, _| {})?;
    let elapsed = start.elapsed();
    if report.acknowledged as usize != n {
        bail!("the plugin handled {} of {n}", report.acknowledged);
    }
    Ok(elapsed)
}

/// Latency from a send (native, in this process) to the line printed by a
/// running `fmes --json watch`, message by message.
fn watch_latency(fmes_bin: &Path, n: usize) -> Result<(Duration, Duration)> {
    use std::io::{BufRead, BufReader};
    let (_dir, path) = fresh_comm()?;
    let queue = Queue::with_options(
        StdFs::new(path.to_str().unwrap()),
        Options {
            durable: false,
            ..Options::default()
        },
    );
    let mut child = Command::new(fmes_bin)
        .arg("--comm")
        .arg(&path)
        .args(["--json", "watch", "sink", "--waiting"])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let result = (|| {
        // The first message shows that the watcher is up.
        queue.send(SendRequest::new("bench", "sink", "\"ready\""))?;
        lines.next().context("the watcher printed nothing")??;
        let mut latencies = Vec::with_capacity(n);
        for i in 0..n {
            let start = Instant::now();
            queue.send(SendRequest::new("bench", "sink", i.to_string()))?;
            lines.next().context("the watcher stopped")??;
            latencies.push(start.elapsed());
            // Apart, so each is a change of its own, as agents send.
            std::thread::sleep(Duration::from_millis(2));
        }
        latencies.sort();
        Ok((latencies[n / 2], latencies[(n * 99).div_ceil(100) - 1]))
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
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

/// The medians of `RUNS` runs of each of two rows, run in turns (a, b, a,
/// b, ...): rows that write thousands of files leave the file system in a
/// state (inodes to reuse, folders to trim) that the next run pays for, and
/// a virtual machine's speed drifts over seconds, so each side must follow
/// the other as often.
fn paired_medians(
    a: impl FnMut() -> Result<Duration>,
    b: impl FnMut() -> Result<Duration>,
) -> Result<(Duration, Duration)> {
    paired_medians_of(RUNS, a, b)
}

/// [`paired_medians`] over `runs` runs of each.
fn paired_medians_of(
    runs: usize,
    mut a: impl FnMut() -> Result<Duration>,
    mut b: impl FnMut() -> Result<Duration>,
) -> Result<(Duration, Duration)> {
    let [a, b] = medians_in_turns(runs, [&mut a, &mut b])?;
    Ok((a, b))
}

/// The medians of `runs` runs of each of several rows, run in turns (see
/// [`paired_medians`]): the floor runs in the same turns as the rows it is
/// the floor of.
fn medians_in_turns<const N: usize>(
    runs: usize,
    mut rows: [&mut dyn FnMut() -> Result<Duration>; N],
) -> Result<[Duration; N]> {
    let mut times: [Vec<Duration>; N] = std::array::from_fn(|_| Vec::with_capacity(runs));
    delete_finished_runs();
    for _ in 0..runs {
        for (row, row_times) in rows.iter_mut().zip(&mut times) {
            row_times.push(row()?);
        }
    }
    delete_finished_runs();
    Ok(times.map(|mut row_times| {
        row_times.sort();
        row_times[runs / 2]
    }))
}

fn median(f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    median_of(RUNS, f)
}

fn median_of(runs: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut times = (0..runs).map(|_| f()).collect::<Result<Vec<_>>>()?;
    times.sort();
    Ok(times[runs / 2])
}

fn time(f: impl FnOnce() -> Result<(), fmes_queue::QueueError>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// A run's temporary folder. Dropped, it is kept until the runs of its row
/// are over ([`delete_finished_runs`]): on ext4 a run started right after
/// another's thousands of files were deleted spent several times the system
/// time creating its own (the file system steers clear of inodes freed
/// moments ago, and the deletion's own work runs meanwhile), so which side
/// of a row followed a deletion decided its time.
struct RunFolder(Option<tempfile::TempDir>);

thread_local! {
    static FINISHED_RUNS: RefCell<Vec<tempfile::TempDir>> = const { RefCell::new(Vec::new()) };
}

impl Drop for RunFolder {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            FINISHED_RUNS.with(|finished| finished.borrow_mut().push(dir));
        }
    }
}

/// Deletes the folders of finished runs, and waits for the file system to
/// write that out, outside any timing.
fn delete_finished_runs() {
    drop(FINISHED_RUNS.with(RefCell::take));
    rustix::fs::sync();
}

fn fresh_comm() -> Result<(RunFolder, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("_COMM");
    std::fs::create_dir(&path)?;
    Queue::new(StdFs::new(path.to_str().unwrap())).init(&["bench".into(), "sink".into()])?;
    Ok((RunFolder(Some(dir)), path))
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
        queue.send(SendRequest::new(
            "bench",
            "sink",
            format!("{{\"seq\": {i}}}"),
        ))?;
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
        comm.send(&SendRequest::new(
            "bench",
            "sink",
            format!("{{\"seq\": {i}}}"),
        ))?;
    }
    Ok(start.elapsed())
}

fn native_claim_ack(n: usize) -> Result<Duration> {
    let (_dir, path) = filled_comm(n)?;
    let queue = native_queue(&path);
    let start = Instant::now();
    for _ in 0..n {
        let batch = queue.claim("sink", "w", 1, Duration::from_secs(600))?;
        queue.ack("sink", "w", &batch.claimed[0].message.file)?;
    }
    Ok(start.elapsed())
}

fn component_claim_ack(n: usize) -> Result<Duration> {
    let (_dir, path) = filled_comm(n)?;
    let mut comm = open_component(&path, true)?;
    let start = Instant::now();
    for _ in 0..n {
        let batch = comm.claim("sink", "w", 1, Duration::from_secs(600))?;
        comm.ack("sink", "w", &batch.claimed[0].message.file)?;
    }
    Ok(start.elapsed())
}

/// A `_COMM` whose mailbox `sink` holds `n` messages, and its path.
fn filled_comm(n: usize) -> Result<(RunFolder, PathBuf)> {
    let (dir, path) = fresh_comm()?;
    let queue = Queue::with_options(
        StdFs::new(path.to_str().unwrap()),
        Options {
            durable: false,
            ..Options::default()
        },
    );
    for i in 0..n {
        queue.send(SendRequest::new(
            "bench",
            "sink",
            format!("{{\"seq\": {i}}}"),
        ))?;
    }
    Ok((dir, path))
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
        bail!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
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
    python_seconds(
        Command::new("python3")
            .arg(python_script())
            .arg(what)
            .arg(path),
    )
}

fn process(command: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let output = command.output()?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
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
