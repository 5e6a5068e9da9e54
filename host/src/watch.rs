//! Waiting for messages: woken by the file system's change notifications
//! (inotify on Linux), polling where the file system gives none or gives
//! them only for local changes (network file systems: another machine's
//! writes raise no local notification).

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::{Comm, Error, MalformedFile, Message};

/// How often to look anyway, in case a notification was lost.
const SAFETY_RESCAN: Duration = Duration::from_secs(5);
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
    let (wake, woken) = mpsc::channel();
    let handler = move |_event: notify::Result<notify::Event>| {
        let _ = wake.send(());
    };
    let native = if poll || is_network_file_system(&mailbox) {
        None
    } else {
        notify::recommended_watcher(handler.clone())
            .and_then(|mut watcher| {
                watcher.watch(&mailbox, RecursiveMode::NonRecursive)?;
                Ok(watcher)
            })
            .ok()
    };
    let _watcher: Box<dyn Watcher> = match native {
        Some(watcher) => Box::new(watcher),
        None => {
            let config = notify::Config::default().with_poll_interval(POLL_INTERVAL);
            let mut watcher = notify::PollWatcher::new(handler, config)
                .map_err(|e| Error::Watch(format!("{e}")))?;
            watcher
                .watch(&mailbox, RecursiveMode::NonRecursive)
                .map_err(|e| Error::Watch(format!("{}: {e}", mailbox.display())))?;
            Box::new(watcher)
        }
    };

    let mut seen: HashSet<String> = HashSet::new();
    let mut seen_malformed: HashSet<String> = HashSet::new();
    let mut first = true;
    loop {
        let received = comm.receive(agent, message_type, None)?;
        // Bad files first: whoever sees a message printed knows every bad
        // file that was there before it has been reported.
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
        // Forget files that left the mailbox, so memory stays bounded.
        seen = current;
        first = false;

        match woken.recv_timeout(SAFETY_RESCAN) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Watch("the file watcher stopped".into()));
            }
        }
        // One look covers every change so far.
        while woken.try_recv().is_ok() {}
    }
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
