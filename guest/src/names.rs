//! Validated names: agents, message types, mailbox folders and message files.
//!
//! Every path the queue touches is built here from parts that can hold only
//! ASCII letters, digits, `-`, `_` (and `.` in file names, never leading), so no
//! input can make a path leave `_COMM`, sandbox or not.

use crate::error::QueueError;

/// Longest agent name, in bytes.
pub const MAX_AGENT_NAME: usize = 64;
/// Longest message type, in bytes.
pub const MAX_TYPE: usize = 32;
/// Longest message file name accepted, in bytes (most file systems allow 255).
pub const MAX_FILE_NAME: usize = 255;

/// The folder, directly in `_COMM`, that holds archived messages.
pub const ARCHIVE_DIR: &str = "ARCHIVE";
/// The folder, directly in `_COMM`, that holds dead letters, one folder per mailbox.
pub const DEAD_DIR: &str = "DEAD";
/// Prefix of every mailbox folder.
pub const MAILBOX_PREFIX: &str = "To_";
/// The agents the Python implementation configures by default.
pub const DEFAULT_AGENTS: [&str; 4] = ["antigravity", "claude", "cursor", "vscode"];

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn is_valid_token(s: &str, max: usize) -> bool {
    // Byte by byte: every name character is ASCII, so any byte of a longer
    // character fails as that character would.
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| is_name_char(char::from(b)))
}

/// Checks an agent name.
pub fn check_agent(name: &str) -> Result<(), QueueError> {
    if is_valid_token(name, MAX_AGENT_NAME) {
        Ok(())
    } else {
        Err(QueueError::InvalidAgentName(name.to_string()))
    }
}

/// Checks a message type.
pub fn check_type(message_type: &str) -> Result<(), QueueError> {
    if is_valid_token(message_type, MAX_TYPE) {
        Ok(())
    } else {
        Err(QueueError::InvalidType(message_type.to_string()))
    }
}

/// Checks a caller-given message id: like an agent name, so a UUID fits
/// and it can name its marker file.
pub fn check_message_id(id: &str) -> Result<(), QueueError> {
    if is_valid_token(id, MAX_AGENT_NAME) {
        Ok(())
    } else {
        Err(QueueError::InvalidMessageId(id.to_string()))
    }
}

/// The mailbox folder of a (valid) agent name: `To_` and the name with its
/// first character upper-cased and the rest lower-cased, like Python's
/// `str.capitalize()`, so identity is case-insensitive.
pub fn mailbox_dir(agent: &str) -> String {
    let mut dir = [MAILBOX_PREFIX, agent].concat();
    // In place: ASCII case changes leave every other character as it is.
    let name = &mut dir[MAILBOX_PREFIX.len()..];
    name.make_ascii_lowercase();
    if let Some(first) = name.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    dir
}

/// The agent whose mailbox a folder is, as a lower-case name, if the folder
/// name is exactly what [`mailbox_dir`] would make for a valid name.
pub fn agent_of_mailbox(dir: &str) -> Option<String> {
    let agent = dir.strip_prefix(MAILBOX_PREFIX)?;
    if check_agent(agent).is_err() || mailbox_dir(agent) != dir {
        return None;
    }
    Some(agent.to_ascii_lowercase())
}

/// Checks a message file name given by a caller (for `archive`): one plain
/// `*.json` name in the mailbox. Writers other than fmes may use any
/// characters, so only what could make it a path is refused: a separator,
/// NUL, a leading dot (`.`, `..`, hidden files), or more than 255 bytes.
pub fn check_message_file(file: &str) -> Result<(), QueueError> {
    let ok = file.len() <= MAX_FILE_NAME
        && file.len() > ".json".len()
        && file.ends_with(".json")
        && !file.starts_with('.')
        && !file.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidFileName(file.to_string()))
    }
}

/// True for a listing entry that readers treat as a message: a name ending
/// in `.json`, like the Python reader's `*.json` glob (which skips names
/// starting with a dot).
pub fn looks_like_message(file: &str) -> bool {
    file.ends_with(".json") && !file.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names_are_checked() {
        for good in ["claude", "VSCode", "a", "agent-7_b", &"x".repeat(64)] {
            assert!(check_agent(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "claude/../../x",
            "../x",
            "/etc",
            "a b",
            "é",
            "a.b",
            &"x".repeat(65),
        ] {
            assert_eq!(
                check_agent(bad),
                Err(QueueError::InvalidAgentName(bad.to_string()))
            );
        }
    }

    #[test]
    fn mailbox_folders_follow_python_capitalize() {
        assert_eq!(mailbox_dir("vscode"), "To_Vscode");
        assert_eq!(mailbox_dir("VSCode"), "To_Vscode");
        assert_eq!(mailbox_dir("VSCODE"), "To_Vscode");
        assert_eq!(mailbox_dir("claude-2"), "To_Claude-2");
        // Not agent names, but no character other than ASCII letters changes.
        assert_eq!(mailbox_dir("éVA"), "To_éva");
        assert_eq!(mailbox_dir("a"), "To_A");
        assert_eq!(mailbox_dir(""), "To_");
        assert_eq!(agent_of_mailbox("To_Vscode").as_deref(), Some("vscode"));
        assert_eq!(agent_of_mailbox("To_VSCode"), None);
        assert_eq!(agent_of_mailbox("To_"), None);
        assert_eq!(agent_of_mailbox("ARCHIVE"), None);
    }

    #[test]
    fn message_file_names_are_checked() {
        assert!(check_message_file("5_20240101_120000_claude_TASK.json").is_ok());
        assert!(check_message_file("5_20240101_120000.000000001Z_a_TASK_0a1b2c3d.json").is_ok());
        // Names the Python writer makes from any sender and type.
        assert!(check_message_file("5_20240101_120000_Jürgen_BUG REPORT.json").is_ok());
        for bad in [
            "../x.json",
            "a/b.json",
            "/etc/passwd.json",
            ".json",
            ".hidden.json",
            "x.txt",
            "x.json.tmp",
            "a\\b.json",
            "a\0.json",
        ] {
            assert!(check_message_file(bad).is_err(), "{bad}");
        }
    }
}
