//! Waiting for messages: woken by the file system's change notifications
//! (inotify on Linux), polling where the file system gives none or gives
//! them only for local changes (network file systems: another machine's
//! writes raise no local notification).

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::{Comm, Error, MalformedFile, Message};

/// Poll interval where the file system gives no notifications.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// What a watch reports.
pub enum Event<'a> {
    /// A message that was not in the mailbox when last looked.
    Message(&'a Message),
    /// A file that is not a message (reported once per file name).
    Malformed(&'a MalformedFile),
}

/// Calls `on_event` for each message that arrives in `agent`'s mailbox
/// (of `message_type`, if given), in delivery order, until `on_event` returns
/// `false` or an error occurs. With `include_waiting`, messages already
/// waiting are reported first. With `poll`, the mailbox is polled even where
/// notifications are available.
pub fn watch(
    comm: &mut Comm,
    agent: &str,
    message_type: Option<&str>,
    include_waiting: bool,
    poll: bool,
    mut on_event: impl FnMut(Event<'_>) -> bool,
) -> Result<(), Error> {
    // Fails early, with the usual errors, for a bad or unknown agent.
    comm.peek(agent)?;
    let mailbox = comm.dir().join(fmes_queue::names::mailbox_dir(agent));

    // Watch before the first look, so nothing sent in between is missed.
    let (wake, woken) = mpsc::channel::<Change>();
    let notified = wake.clone();
    let native = if poll || is_network_file_system(&mailbox) {
        None
    } else {
        notify::recommended_watcher(move |event| {
            for change in changes(event) {
                let _ = notified.send(change);
            }
        })
        .and_then(|mut watcher| {
            watcher.watch(&mailbox, RecursiveMode::NonRecursive)?;
            Ok(watcher)
        })
        .ok()
    };
    let _watcher: Box<dyn Watcher> = match native {
        Some(watcher) => Box::new(watcher),
        None => {
            // Polling compares listings: any change means a whole look.
            let handler = move |_event: notify::Result<notify::Event>| {
                let _ = wake.send(Change::Look);
            };
            let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
            let mut watcher = notify::PollWatcher::new(handler, config)
                .map_err(|e| Error::Watch(format!("{e}")))?;
            watcher
                .watch(&mailbox, RecursiveMode::NonRecursive)
                .map_err(|e| Error::Watch(format!("{}: {e}", mailbox.display())))?;
            Box::new(watcher)
        }
    };

    // Files reported (messages) or reported as not messages, while they stay.
    let mut seen: HashSet<String> = HashSet::new();
    let mut seen_malformed: HashSet<String> = HashSet::new();
    let mut look = true;
    let mut first = true;
    let mut appeared: Vec<String> = Vec::new();
    let mut complete: HashSet<String> = HashSet::new();
    loop {
        if look {
            // The whole mailbox: at the start, and when the watcher could not
            // say what changed.
            let received = comm.receive(agent, message_type, None)?;
            // Bad files first: whoever sees a message printed knows every
            // bad file that was there before it has been reported.
            let mut current_malformed = HashSet::new();
            for bad in &received.malformed {
                current_malformed.insert(bad.file.clone());
                if !seen_malformed.contains(&bad.file) && !on_event(Event::Malformed(bad)) {
                    return Ok(());
                }
            }
            seen_malformed = current_malformed;
            let mut current = HashSet::with_capacity(received.messages.len());
            for message in &received.messages {
                let new = !seen.contains(&message.file);
                current.insert(message.file.clone());
                if new && (!first || include_waiting) && !on_event(Event::Message(message)) {
                    return Ok(());
                }
            }
            seen = current;
            first = false;
        } else if !appeared.is_empty() {
            // Only the files the notifications named.
            let received = comm.read(agent, &appeared)?;
            for bad in &received.malformed {
                // A file still being written (created, not yet closed) is not
                // reported: its close will bring it back, complete.
                if complete.contains(&bad.file)
                    && seen_malformed.insert(bad.file.clone())
                    && !on_event(Event::Malformed(bad))
                {
                    return Ok(());
                }
            }
            for message in &received.messages {
                if message_type.is_some_and(|t| t != message.message_type) {
                    continue;
                }
                if seen.insert(message.file.clone()) && !on_event(Event::Message(message)) {
                    return Ok(());
                }
            }
        }

        // Wait for a change, then take every change so far in one go.
        look = false;
        appeared.clear();
        complete.clear();
        let change = woken
            .recv()
            .map_err(|_| Error::Watch("the file watcher stopped".into()))?;
        for change in std::iter::once(change).chain(woken.try_iter()) {
            match change {
                Change::Look => look = true,
                Change::Appeared { file, closed } => {
                    if closed {
                        complete.insert(file.clone());
                    }
                    if !seen.contains(&file) && !appeared.contains(&file) {
                        appeared.push(file);
                    }
                }
                Change::Left(file) => {
                    seen.remove(&file);
                    seen_malformed.remove(&file);
                    appeared.retain(|f| *f != file);
                }
            }
        }
    }
}

/// What a change notification means for the watcher.
enum Change {
    /// Something changed that the notification does not name: look at the
    /// whole mailbox.
    Look,
    /// A `*.json` file appeared or changed; `closed` once its writer closed
    /// it or moved it into place (a file just created may still be empty).
    Appeared { file: String, closed: bool },
    /// A `*.json` file left the mailbox.
    Left(String),
}

/// What one notification means. A send makes four or five notifications
/// (its temporary file is created, written, closed, linked, removed), of
/// which only the link matters; reads and metadata changes are ignored.
fn changes(event: notify::Result<notify::Event>) -> Vec<Change> {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode, MetadataKind, ModifyKind, RenameMode};
    let Ok(event) = event else {
        return vec![Change::Look];
    };
    if event.need_rescan() || event.paths.is_empty() {
        return vec![Change::Look];
    }
    #[derive(Clone, Copy)]
    enum Meaning {
        Appeared { closed: bool },
        Left,
        Nothing,
        Look,
    }
    let meaning = match event.kind {
        // Linked or created in place: complete if linked, maybe empty if
        // created by a writer that fills the final name directly (Python's).
        EventKind::Create(_) => Meaning::Appeared { closed: false },
        EventKind::Modify(ModifyKind::Data(_)) => Meaning::Appeared { closed: false },
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            Meaning::Appeared { closed: true }
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Meaning::Appeared { closed: true },
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
            Meaning::Left
        }
        EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
            | MetadataKind::Permissions
            | MetadataKind::Ownership
            | MetadataKind::Extended,
        ))
        | EventKind::Access(_) => Meaning::Nothing,
        // Renames seen from both ends, and kinds the watcher did not name.
        _ => Meaning::Look,
    };
    let mut out = Vec::new();
    for path in &event.paths {
        // Only names a reader would take for a message (`*.json`, not
        // hidden, a valid file name).
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let is_message = fmes_queue::names::looks_like_message(file)
            && fmes_queue::names::check_message_file(file).is_ok();
        match meaning {
            _ if !is_message => {}
            Meaning::Appeared { closed } => out.push(Change::Appeared {
                file: file.to_string(),
                closed,
            }),
            Meaning::Left => out.push(Change::Left(file.to_string())),
            Meaning::Nothing => {}
            Meaning::Look => return vec![Change::Look],
        }
    }
    out
}

/// True if `path` is on a file system whose change notifications miss
/// other machines' writes (NFS, SMB/CIFS, FUSE, Ceph, 9P, AFS, ...).
#[cfg(target_os = "linux")]
pub fn is_network_file_system(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    const NETWORK_MAGICS: [i64; 10] = [
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x6573_5546, // FUSE (sshfs, many cluster file systems)
        0x00C3_6400, // Ceph
        0x0102_1997, // 9P
        0x5346_414F, // AFS
        0x0BD0_0BD0, // Lustre
        0x4750_4653, // GPFS
    ];
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a zeroed out-struct of the right type.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return false;
    }
    NETWORK_MAGICS.contains(&(stat.f_type as i64))
}

#[cfg(not(target_os = "linux"))]
pub fn is_network_file_system(_path: &std::path::Path) -> bool {
    false
}
