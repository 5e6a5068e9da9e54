//! A status line on stderr while something runs, shown only when stderr is
//! a terminal (and not with `-q`), so piped and logged runs stay quiet.
//!
//! Queue operations are single component calls that report counts only when
//! they finish, so the line says what is being done and for how long, with a
//! spinner; it never makes up a percentage. Whoever writes other output while
//! the line is shown clears it first ([`Progress::clear`],
//! [`Progress::suspend`]); it is drawn again on the next update.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const FRAME_TIME: Duration = Duration::from_millis(100);
/// Moves to the start of the line and erases it.
const ERASE_LINE: &str = "\r\x1b[2K";

/// True if a status line may be drawn: stderr is a terminal that understands
/// escape sequences, and `-q` was not given.
pub fn wanted(quiet: bool) -> bool {
    !quiet
        && std::io::stderr().is_terminal()
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb")
}

/// A status line; erased when dropped.
pub struct Progress {
    shared: Option<Arc<Shared>>,
    spinner: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    message: String,
    started: Instant,
    /// Spinner frame, or `None` for a line that does not move.
    frame: Option<usize>,
    shown: bool,
    done: bool,
}

impl Progress {
    /// A status line that draws nothing.
    pub fn hidden() -> Progress {
        Progress {
            shared: None,
            spinner: None,
        }
    }

    /// A spinner with the message and the time so far, if `enabled`.
    pub fn spinner(enabled: bool, message: impl Into<String>) -> Progress {
        Progress::start(enabled, message.into(), true)
    }

    /// A line that changes only when [`Progress::set`] changes it (no
    /// wake-ups while idle), if `enabled`.
    pub fn status(enabled: bool, message: impl Into<String>) -> Progress {
        Progress::start(enabled, message.into(), false)
    }

    fn start(enabled: bool, message: String, animate: bool) -> Progress {
        if !enabled {
            return Progress::hidden();
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                message,
                started: Instant::now(),
                frame: animate.then_some(0),
                shown: false,
                done: false,
            }),
            wake: Condvar::new(),
        });
        draw(&mut shared.lock());
        let spinner = animate.then(|| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut state = shared.lock();
                loop {
                    state = match shared.wake.wait_timeout(state, FRAME_TIME) {
                        Ok((state, _)) => state,
                        Err(poisoned) => poisoned.into_inner().0,
                    };
                    if state.done {
                        return;
                    }
                    if let Some(frame) = &mut state.frame {
                        *frame = (*frame + 1) % FRAMES.len();
                    }
                    draw(&mut state);
                }
            })
        });
        Progress {
            shared: Some(shared),
            spinner,
        }
    }

    /// Replaces the message and draws the line.
    pub fn set(&self, message: impl Into<String>) {
        if let Some(shared) = &self.shared {
            let mut state = shared.lock();
            state.message = message.into();
            draw(&mut state);
        }
    }

    /// Erases the line until the next update, so other output starts on a
    /// clean line.
    pub fn clear(&self) {
        if let Some(shared) = &self.shared {
            erase(&mut shared.lock());
        }
    }

    /// Runs `f` (which writes other output) with the line erased, then draws
    /// it again.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(shared) = &self.shared else {
            return f();
        };
        let mut state = shared.lock();
        erase(&mut state);
        let result = f();
        draw(&mut state);
        result
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        {
            let mut state = shared.lock();
            state.done = true;
            erase(&mut state);
        }
        shared.wake.notify_all();
        if let Some(spinner) = self.spinner.take() {
            let _ = spinner.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn draw(state: &mut State) {
    if state.done {
        return;
    }
    let mut line = String::new();
    if let Some(frame) = state.frame {
        line.push(FRAMES[frame]);
        line.push(' ');
    }
    line.push_str(&state.message);
    let elapsed = state.started.elapsed().as_secs();
    if state.frame.is_some() && elapsed > 0 {
        line.push_str(&format!(" ({elapsed}s)"));
    }
    // A line longer than the terminal would wrap, and erasing would then
    // leave its first part behind.
    let width = terminal_width().saturating_sub(1).max(10);
    if line.chars().count() > width {
        line = line.chars().take(width - 1).collect();
        line.push('…');
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{ERASE_LINE}{line}");
    let _ = stderr.flush();
    state.shown = true;
}

fn erase(state: &mut State) {
    if state.shown {
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "{ERASE_LINE}");
        let _ = stderr.flush();
        state.shown = false;
    }
}

#[cfg(unix)]
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ fills a winsize struct, which is zeroed and of the right type.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    if unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0
        && size.ws_col > 0
    {
        usize::from(size.ws_col)
    } else {
        80
    }
}

#[cfg(not(unix))]
fn terminal_width() -> usize {
    80
}
