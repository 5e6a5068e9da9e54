//! Message files: building them, parsing them, and naming them so that a
//! byte-wise sort of names is the delivery order.

use serde_json::{Map, Value};

use crate::clock::UtcNanos;

/// One message as stored, plus the name of its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub from: String,
    pub to: String,
    pub message_type: String,
    pub priority: u8,
    pub timestamp: String,
    /// Compact JSON text of the payload.
    pub payload: String,
    /// Name of the file inside the recipient's mailbox.
    pub file: String,
    /// Compact JSON text of the whole stored object, extra fields included.
    pub raw: String,
}

/// The fields of a new message, before it has a file.
pub struct NewMessage<'a> {
    pub id: String,
    pub from: &'a str,
    pub to: &'a str,
    pub message_type: &'a str,
    pub priority: u8,
    pub sent: UtcNanos,
    pub payload: Value,
}

impl NewMessage<'_> {
    /// The stored JSON object, with fields in the format's order.
    pub fn to_object(&self) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), Value::from(self.id.as_str()));
        object.insert("from".into(), Value::from(self.from));
        object.insert("to".into(), Value::from(self.to));
        object.insert("type".into(), Value::from(self.message_type));
        object.insert("priority".into(), Value::from(self.priority));
        object.insert("timestamp".into(), Value::from(self.sent.timestamp()));
        object.insert("payload".into(), self.payload.clone());
        Value::Object(object)
    }

    /// The file name: `{priority}_{YYYYmmdd_HHMMSS.nnnnnnnnnZ}_{from}_{type}_{unique}.json`.
    ///
    /// Byte-wise order of these names is priority, then UTC send time, as the
    /// Python reader sorts them; `unique` (the writer's host-and-process tag
    /// and a counter) only separates sends made in the same nanosecond.
    pub fn file_name(&self, unique: &str) -> String {
        format!(
            "{}_{}_{}_{}_{}.json",
            self.priority,
            self.sent.name_stamp(),
            self.from,
            self.message_type,
            unique
        )
    }
}

/// Where a message falls in delivery order: priority, then UTC send time,
/// then file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OrderKey {
    pub priority: u8,
    pub sent: UtcNanos,
    pub file: String,
}

/// The order key of an fmes-named file, read from its name alone; `None`
/// for other names (the Python writer's, or anyone's), whose key comes from
/// their contents.
pub fn key_from_fmes_name(file: &str) -> Option<OrderKey> {
    let b = file.as_bytes();
    if b.len() < 29 || !(b'1'..=b'9').contains(&b[0]) || b[1] != b'_' || b[28] != b'_' {
        return None;
    }
    let sent = UtcNanos::parse_name_stamp(&file[2..28])?;
    Some(OrderKey {
        priority: b[0] - b'0',
        sent,
        file: file.to_string(),
    })
}

/// Parses a message file's bytes; the error says why it is not a message.
pub fn parse(file: &str, bytes: &[u8]) -> Result<(Message, OrderKey), String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("not UTF-8: invalid byte at offset {}", e.valid_up_to()))?;
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(object) = value else {
        return Err(format!("not a JSON object but {}", kind_name(&value)));
    };
    let string = |field: &str| -> Result<String, String> {
        match object.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(format!(
                "field \"{field}\" must be a string, found {}",
                kind_name(other)
            )),
            None => Err(format!("field \"{field}\" is missing")),
        }
    };
    let id = string("id")?;
    let from = string("from")?;
    let to = string("to")?;
    let message_type = string("type")?;
    let timestamp = string("timestamp")?;
    // Writers other than fmes may use any integer; deliver what fits a u8
    // rather than lose it, ordered by its value.
    let priority = match object.get("priority") {
        Some(Value::Number(n)) => {
            n.as_u64()
                .and_then(|p| u8::try_from(p).ok())
                .ok_or_else(|| {
                    format!("field \"priority\" must be an integer from 0 to 255, found {n}")
                })?
        }
        Some(other) => {
            return Err(format!(
                "field \"priority\" must be an integer, found {}",
                kind_name(other)
            ));
        }
        None => return Err("field \"priority\" is missing".to_string()),
    };
    let sent = UtcNanos::parse_timestamp(&timestamp).ok_or_else(|| {
        format!("field \"timestamp\" is {timestamp:?}, not a UTC time YYYY-MM-DDTHH:MM:SSZ")
    })?;
    let payload = object
        .get("payload")
        .ok_or_else(|| "field \"payload\" is missing".to_string())?
        .to_string();
    let key = key_from_fmes_name(file).unwrap_or(OrderKey {
        priority,
        sent,
        file: file.to_string(),
    });
    let raw = Value::Object(object).to_string();
    let message = Message {
        id,
        from,
        to,
        message_type,
        priority,
        timestamp,
        payload,
        file: file.to_string(),
        raw,
    };
    Ok((message, key))
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_message(priority: u8, sent: UtcNanos) -> NewMessage<'static> {
        NewMessage {
            id: "00000000-0000-4000-8000-000000000000".into(),
            from: "claude",
            to: "cursor",
            message_type: "TASK",
            priority,
            sent,
            payload: serde_json::json!({"k": "é"}),
        }
    }

    #[test]
    fn fmes_names_sort_in_delivery_order_and_parse_back() {
        let times = [
            UtcNanos(1_700_000_000_000_000_001),
            UtcNanos(1_700_000_000_000_000_002),
            UtcNanos(1_700_000_001_000_000_000),
        ];
        let mut names = Vec::new();
        for priority in [9, 1, 5] {
            for sent in times.iter().rev() {
                names.push(new_message(priority, *sent).file_name("0a0b0c0d"));
            }
        }
        let mut by_name = names.clone();
        by_name.sort();
        let mut by_key = names.clone();
        by_key.sort_by_key(|n| key_from_fmes_name(n).unwrap());
        assert_eq!(by_name, by_key);
        let first = key_from_fmes_name(&by_name[0]).unwrap();
        assert_eq!((first.priority, first.sent), (1, times[0]));
    }

    #[test]
    fn python_names_have_no_name_key() {
        assert_eq!(
            key_from_fmes_name("5_20240101_120000_claude_TASK.json"),
            None
        );
        assert_eq!(key_from_fmes_name("notes.json"), None);
    }

    #[test]
    fn parses_a_stored_message_keeping_extra_fields() {
        let new = new_message(5, UtcNanos(1_700_000_000_000_000_000));
        let mut object = new.to_object();
        object["reply_to"] = Value::from("abc");
        let file = new.file_name("0a0b0c0d");
        let (message, key) = parse(&file, object.to_string().as_bytes()).unwrap();
        assert_eq!(message.timestamp, "2023-11-14T22:13:20Z");
        assert_eq!(message.payload, r#"{"k":"é"}"#);
        assert!(message.raw.contains(r#""reply_to":"abc""#));
        assert_eq!(key.sent, UtcNanos(1_700_000_000_000_000_000));
    }

    #[test]
    fn says_why_a_file_is_not_a_message() {
        let cases: [(&[u8], &str); 7] = [
            (b"\xff\xfe", "not UTF-8"),
            (b"{", "not JSON"),
            (b"[1]", "not a JSON object but an array"),
            (b"{}", "field \"id\" is missing"),
            (
                br#"{"id":"x","from":"a","to":"b","type":"T","priority":"5","timestamp":"2024-01-01T00:00:00Z","payload":1}"#,
                "field \"priority\" must be an integer, found a string",
            ),
            (
                br#"{"id":"x","from":"a","to":"b","type":"T","priority":5,"timestamp":"yesterday","payload":1}"#,
                "field \"timestamp\" is \"yesterday\"",
            ),
            (
                br#"{"id":"x","from":"a","to":"b","type":"T","priority":5,"timestamp":"2024-01-01T00:00:00Z"}"#,
                "field \"payload\" is missing",
            ),
        ];
        for (bytes, reason) in cases {
            let err = parse("x.json", bytes).unwrap_err();
            assert!(err.contains(reason), "{err:?} should contain {reason:?}");
        }
    }
}
