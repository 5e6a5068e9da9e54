//! Printing: messages as text or JSON lines, warnings, errors.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Map, Value};

use crate::{MalformedFile, Message};

/// True if the error is a write to a closed pipe.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints `error: ...` and each cause on its own line, to stderr.
pub fn print_error(e: &anyhow::Error) {
    // Errors quote what they are about: names from a mailbox, a plugin's
    // imports or its function names, none of which may drive the terminal.
    let mut text = format!("error: {}\n", terminal_safe(&e.to_string()));
    for cause in e.chain().skip(1) {
        let cause = terminal_safe(&cause.to_string());
        text.push_str(&format!("  caused by: {cause}\n"));
    }
    crate::stderr::write(&text);
}

/// Text with line breaks kept (a parser's error may point at a line) and
/// every other control character, or character that reorders or breaks
/// the text around it, escaped.
fn terminal_safe(text: &str) -> String {
    text.lines().map(printable).collect::<Vec<_>>().join("\n")
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// `-q`: warnings are not printed from now on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Warns on stderr about files that are not messages, naming each and why
/// (unless `-q`).
pub fn warn_malformed(mailbox: &str, malformed: &[MalformedFile]) {
    if QUIET.load(Ordering::Relaxed) {
        return;
    }
    for bad in malformed {
        crate::stderr::line!(
            "warning: skipped {mailbox}/{}: {}",
            printable(&bad.file),
            printable(&bad.reason)
        );
    }
}

/// The message as stored, plus its `file` name and the `extra` fields, as
/// one line of JSON.
pub fn message_json(message: &Message, extra: &[(&str, Value)]) -> String {
    let file = ("file", Value::from(message.file.as_str()));
    let added = std::iter::once(&file).chain(extra);
    match serde_json::from_str::<Value>(&message.raw) {
        Ok(Value::Object(mut object)) => {
            for (key, value) in added {
                object.insert((*key).into(), value.clone());
            }
            Value::Object(object).to_string()
        }
        // JSON that serde_json takes as no value: a string escaping half a
        // surrogate pair (`"\ud800"`), which JSON's grammar allows and the
        // Python writer writes. Its own text, compacted, with the fields
        // added at the end, so nothing it holds is lost or changed.
        Err(_) if message.raw.trim_end().ends_with('}') => {
            let mut line = fmes_queue::message::compact(&message.raw);
            line.pop();
            for (key, value) in added {
                if !line.ends_with('{') {
                    line.push(',');
                }
                line.push_str(&Value::from(*key).to_string());
                line.push(':');
                line.push_str(&value.to_string());
            }
            line.push('}');
            line
        }
        // `raw` always comes from a parsed object; rebuild it if not.
        _ => {
            let mut object = Map::new();
            object.insert("id".into(), message.id.clone().into());
            object.insert("from".into(), message.from.clone().into());
            object.insert("to".into(), message.to.clone().into());
            object.insert("type".into(), message.message_type.clone().into());
            object.insert("priority".into(), message.priority.into());
            object.insert("timestamp".into(), message.timestamp.clone().into());
            object.insert("payload".into(), payload_value(message));
            for (key, value) in added {
                object.insert((*key).into(), value.clone());
            }
            Value::Object(object).to_string()
        }
    }
}

fn payload_value(message: &Message) -> Value {
    serde_json::from_str(&message.payload)
        .unwrap_or_else(|_| Value::String(message.payload.clone()))
}

/// Writes one message: a JSON line, or a few lines of text.
pub fn write_message(out: &mut impl Write, message: &Message, json: bool) -> io::Result<()> {
    if json {
        return writeln!(out, "{}", message_json(message, &[]));
    }
    writeln!(
        out,
        "[{}] {} from {} to {} at {}",
        message.priority,
        printable(&message.message_type),
        printable(&message.from),
        printable(&message.to),
        printable(&message.timestamp)
    )?;
    writeln!(out, "    file: {}", printable(&message.file))?;
    writeln!(out, "    id:   {}", printable(&message.id))?;
    // JSON text escapes every control character, so the payload is safe to
    // show; one serde_json takes as no value (half a surrogate pair) is
    // shown as it is, compact.
    let pretty = serde_json::from_str::<Value>(&message.payload)
        .ok()
        .and_then(|payload| serde_json::to_string_pretty(&payload).ok())
        .unwrap_or_else(|| message.payload.clone());
    for line in pretty.lines() {
        writeln!(out, "    {line}")?;
    }
    Ok(())
}

/// A string with control characters escaped, so text from a mailbox cannot
/// drive the terminal, and so are the characters that reorder or break the
/// text around them (bidirectional overrides, line separators).
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || reorders_text(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// True for the characters that, unseen, change how the text around them
/// is shown: bidirectional marks, embeddings, overrides and isolates (which
/// make `exe.txt` show as `txt.exe`), and the line and paragraph
/// separators.
pub fn reorders_text(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
            | '\u{2028}' | '\u{2029}'
    )
}

/// A time in milliseconds since 1970 as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_ms(ms: u64) -> String {
    fmes_queue::clock::UtcNanos(ms.saturating_mul(1_000_000)).timestamp()
}

/// Runs `op` on each file, writing each success with `report`. A failed
/// file is named on stderr (`error: cannot {verb} FILE` and the causes) and
/// the others are still tried; the exit code is 1 if any failed.
pub fn each_file<T>(
    files: &[String],
    verb: &str,
    mut op: impl FnMut(&str) -> Result<T, crate::Error>,
    mut report: impl FnMut(&str, T) -> io::Result<()>,
) -> anyhow::Result<std::process::ExitCode> {
    let mut failed = false;
    for file in files {
        match op(file) {
            Ok(done) => report(file, done)?,
            Err(e) => {
                failed = true;
                print_error(
                    &anyhow::Error::new(e).context(format!("cannot {verb} {}", printable(file))),
                );
            }
        }
    }
    Ok(if failed {
        std::process::ExitCode::from(super::EXIT_FAILURE)
    } else {
        std::process::ExitCode::SUCCESS
    })
}
