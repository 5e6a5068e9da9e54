//! Message files: building them, parsing them, and naming them so that a
//! byte-wise sort of names is the delivery order.

use std::collections::BinaryHeap;
use std::marker::PhantomData;
use std::ops::Range;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

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
    /// The file's text as stored (the writer's layout), extra fields included.
    pub raw: String,
}

impl Message {
    /// Bytes the host is charged for this message when an answer carries
    /// it out of the component: its strings (the text and the payload,
    /// so about twice its file), and a record's worth (wasmtime counts the
    /// host's record for each element of a list, 200 bytes or so).
    pub fn answer_bytes(&self) -> u64 {
        const RECORD_BYTES: usize = 256;
        let strings = [
            &self.id,
            &self.from,
            &self.to,
            &self.message_type,
            &self.timestamp,
            &self.payload,
            &self.file,
            &self.raw,
        ];
        (strings.iter().map(|s| s.len()).sum::<usize>() + RECORD_BYTES) as u64
    }
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
    /// The file's text: the format's fields in its order, then `fmes_file`
    /// when given, laid out as the Python writer does (two-space indent),
    /// with a final newline.
    pub fn stored_text(&self, fmes_file: Option<&str>) -> Result<String, serde_json::Error> {
        Ok(self.stored_text_and_payload(fmes_file)?.0)
    }

    /// [`Self::stored_text`], and where in it the payload is (laid out one
    /// level in, as the whole is): [`compact`] of that part is the payload
    /// as `to_string` writes it, for the fraction of the cost.
    pub fn stored_text_and_payload(
        &self,
        fmes_file: Option<&str>,
    ) -> Result<(String, Range<usize>), serde_json::Error> {
        // Written field by field, as serde_json lays out the whole object
        // (`to_string_pretty`, which the tests compare it with): serde's
        // machinery for a struct costs more than the rest of a send's text,
        // most of all in wasm. Only the payload goes through serde, straight
        // into the text. Bytes, checked as UTF-8 once at the end: serde
        // writes bytes.
        let mut text = Vec::with_capacity(
            // The fixed text and a small payload; a big one grows it.
            256 + self.id.len()
                + self.from.len()
                + self.to.len()
                + self.message_type.len()
                + fmes_file.map_or(0, |file| file.len() + 20),
        );
        text.extend_from_slice(b"{\n  \"id\": ");
        push_json_string(&mut text, &self.id);
        text.extend_from_slice(b",\n  \"from\": ");
        push_json_string(&mut text, self.from);
        text.extend_from_slice(b",\n  \"to\": ");
        push_json_string(&mut text, self.to);
        text.extend_from_slice(b",\n  \"type\": ");
        push_json_string(&mut text, self.message_type);
        text.extend_from_slice(b",\n  \"priority\": ");
        push_decimal(&mut text, self.priority);
        text.extend_from_slice(b",\n  \"timestamp\": \"");
        text.extend_from_slice(&self.sent.timestamp_bytes());
        text.extend_from_slice(b"\",\n  \"payload\": ");
        let payload_start = text.len();
        let mut nested = serde_json::Serializer::with_formatter(&mut text, NestedPretty::default());
        serde::Serialize::serialize(&self.payload, &mut nested)?;
        let payload = payload_start..text.len();
        if let Some(file) = fmes_file {
            text.extend_from_slice(b",\n  \"fmes_file\": ");
            push_json_string(&mut text, file);
        }
        text.extend_from_slice(b"\n}\n");
        let text = String::from_utf8(text).expect("text made of strings and serde_json's output");
        Ok((text, payload))
    }

    /// The stored JSON object, with fields in the format's order.
    #[cfg(test)]
    pub fn to_object(&self) -> Value {
        let mut object = serde_json::Map::new();
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
        // Pushed piece by piece: `format!` costs several times more in wasm.
        let stamp = self.sent.name_stamp_bytes();
        let stamp = std::str::from_utf8(&stamp).expect("ASCII digits");
        let mut name = String::with_capacity(
            stamp.len() + self.from.len() + self.message_type.len() + unique.len() + 12,
        );
        crate::clock::push_digits(&mut name, self.priority.into(), 1);
        for part in [stamp, self.from, self.message_type, unique] {
            name.push('_');
            name.push_str(part);
        }
        name.push_str(".json");
        name
    }
}

/// serde_json's pretty layout (two-space indent) one level deep: a value's
/// layout as a field of the stored object, written straight into its text.
#[derive(Default)]
struct NestedPretty {
    /// Levels below the stored object's fields.
    depth: usize,
    /// Whether the array or object being written has an element yet.
    has_value: bool,
}

impl NestedPretty {
    fn new_line<W: ?Sized + std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b"\n  ")?;
        for _ in 0..self.depth {
            writer.write_all(b"  ")?;
        }
        Ok(())
    }

    /// An array or object begins with `bracket`.
    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        writer.write_all(bracket)
    }

    /// An array or object ends with `bracket`, on a line of its own unless
    /// it is empty (`[]`, `{}`). The enclosing one's `has_value` is set
    /// again when this one, its element, ends.
    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.new_line(writer)?;
        }
        writer.write_all(bracket)
    }
}

impl serde_json::ser::Formatter for NestedPretty {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.open(writer, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.close(writer, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if !first {
            writer.write_all(b",")?;
        }
        self.new_line(writer)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.open(writer, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        self.close(writer, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.begin_array_value(writer, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Whether `text` holds no control character, quote or backslash: what
/// JSON escapes. Eight bytes a turn: wasm checks the time limit at every
/// turn of a loop, which makes a loop over bytes cost several times what it
/// does natively. A false alarm would only take the escaping way, whose
/// output is the same for such text; a miss cannot happen.
fn needs_no_escape(text: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // The high bit of some byte is set iff a byte of `x` is below `n` (for
    // `n` up to 128): subtracting borrows from a byte only when it is
    // below `n`, and `!x` keeps bytes that were 128 or more out.
    let has_byte_below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH_BITS != 0;
    let has_byte = |x: u64, b: u8| has_byte_below(x ^ (ONES * u64::from(b)), 1);
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        if has_byte_below(x, 0x20) || has_byte(x, b'"') || has_byte(x, b'\\') {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// `value` in decimal, as JSON writes a number.
fn push_decimal(text: &mut Vec<u8>, value: u8) {
    if value >= 100 {
        text.push(b'0' + value / 100);
    }
    if value >= 10 {
        text.push(b'0' + value / 10 % 10);
    }
    text.push(b'0' + value % 10);
}

/// `value` as a JSON string, escaped as serde_json escapes it.
fn push_json_string(text: &mut Vec<u8>, value: &str) {
    if needs_no_escape(value.as_bytes()) {
        text.push(b'"');
        text.extend_from_slice(value.as_bytes());
        text.push(b'"');
    } else {
        serde_json::to_writer(text, value).expect("a string always serializes");
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
    let (priority, sent) = order_from_fmes_name(file)?;
    Some(OrderKey {
        priority,
        sent,
        file: file.to_string(),
    })
}

/// The delivery order key of a message file: from its fmes name, else from
/// its fields' priority and send time.
pub fn order_key(file: &str, priority: u8, sent: UtcNanos) -> OrderKey {
    key_from_fmes_name(file).unwrap_or(OrderKey {
        priority,
        sent,
        file: file.to_string(),
    })
}

impl Message {
    /// Where this message falls in delivery order, as a reading orders it.
    pub fn order_key(&self) -> OrderKey {
        // A message was read only if its timestamp parsed.
        let sent = UtcNanos::parse_timestamp(&self.timestamp).unwrap_or(UtcNanos(0));
        order_key(&self.file, self.priority, sent)
    }
}

/// Priority and send time from an fmes name, without copying the name.
pub fn order_from_fmes_name(file: &str) -> Option<(u8, UtcNanos)> {
    let b = file.as_bytes();
    if b.len() < 29 || !(b'1'..=b'9').contains(&b[0]) || b[1] != b'_' || b[28] != b'_' {
        return None;
    }
    let sent = UtcNanos::parse_name_stamp(&file[2..28])?;
    Some((b[0] - b'0', sent))
}

/// The order a reading goes through a mailbox in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReadingOrder {
    /// Priority, then send time, then file name: the order messages are
    /// delivered in.
    #[default]
    Delivery,
    /// Send time, then file name, whatever the priority: the order to put
    /// several mailboxes' messages in one timeline.
    SendTime,
}

impl ReadingOrder {
    /// What keys are compared by in this order (file names are unique in a
    /// mailbox, so both orders are total).
    fn rank(self, priority: u8, sent: UtcNanos, file: &str) -> (u8, UtcNanos, &str) {
        match self {
            ReadingOrder::Delivery => (priority, sent, file),
            ReadingOrder::SendTime => (0, sent, file),
        }
    }

    /// Compares two keys in this order.
    pub fn compare(self, a: &OrderKey, b: &OrderKey) -> std::cmp::Ordering {
        self.rank(a.priority, a.sent, &a.file)
            .cmp(&self.rank(b.priority, b.sent, &b.file))
    }
}

/// The send time that orders a message read from `file`: the one in an fmes
/// name, else its `timestamp` field's; `None` if neither is one. The same
/// as the key a reading orders the file by, for a caller that merges pages.
pub fn sent_of(file: &str, timestamp: &str) -> Option<UtcNanos> {
    match order_from_fmes_name(file) {
        Some((_, sent)) => Some(sent),
        None => UtcNanos::parse_timestamp(timestamp),
    }
}

/// An order key in a heap that compares in a reading's order.
#[derive(Debug)]
struct Ranked {
    key: OrderKey,
    order: ReadingOrder,
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Ranked) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Ranked) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Ranked) -> std::cmp::Ordering {
        self.order.compare(&self.key, &other.key)
    }
}

/// The first order keys offered, at most `keep` of them (all with `None`):
/// the first N of a huge mailbox without holding, sorting or even copying
/// the names of the rest.
pub struct FirstKeys {
    /// A max-heap: its top is the key the next smaller one replaces.
    heap: BinaryHeap<Ranked>,
    keep: Option<usize>,
    order: ReadingOrder,
    /// Keys up to this one are not wanted (a page's start).
    after: Option<OrderKey>,
    /// True once a key was left out (offered while `keep` were held).
    pub dropped: bool,
}

impl FirstKeys {
    pub fn new(keep: Option<usize>) -> FirstKeys {
        FirstKeys::after(keep, ReadingOrder::Delivery, None)
    }

    /// The first keys in `order` past `after` (every key with `None`).
    pub fn after(keep: Option<usize>, order: ReadingOrder, after: Option<OrderKey>) -> FirstKeys {
        FirstKeys {
            heap: BinaryHeap::new(),
            keep,
            order,
            after,
            dropped: false,
        }
    }

    /// True for a key at or before `after`.
    fn before_start(&self, priority: u8, sent: UtcNanos, file: &str) -> bool {
        self.after.as_ref().is_some_and(|after| {
            self.order.rank(priority, sent, file)
                <= self.order.rank(after.priority, after.sent, &after.file)
        })
    }

    /// Offers a file by its fmes name; false (and nothing kept) if the name
    /// is not an fmes name, whose key must come from the file's contents.
    pub fn offer_name(&mut self, file: &str) -> bool {
        let Some((priority, sent)) = order_from_fmes_name(file) else {
            return false;
        };
        if self.before_start(priority, sent, file) {
            return true;
        }
        let order = self.order;
        let ranked = || Ranked {
            key: OrderKey {
                priority,
                sent,
                file: file.to_string(),
            },
            order,
        };
        if !self.full() {
            self.heap.push(ranked());
        } else if let Some(mut largest) = self.heap.peek_mut()
            && order.rank(priority, sent, file)
                < order.rank(largest.key.priority, largest.key.sent, &largest.key.file)
        {
            // Overwritten in place, the name into the replaced one's buffer:
            // a listing in reverse order replaces the top at every name.
            let key = &mut largest.key;
            key.priority = priority;
            key.sent = sent;
            key.file.clear();
            key.file.push_str(file);
        }
        true
    }

    /// Offers a key read from a file's contents.
    pub fn offer(&mut self, key: OrderKey) {
        if self.before_start(key.priority, key.sent, &key.file) {
            return;
        }
        let key = Ranked {
            key,
            order: self.order,
        };
        if !self.full() {
            self.heap.push(key);
        } else if let Some(mut largest) = self.heap.peek_mut()
            && key < *largest
        {
            *largest = key;
        }
    }

    /// True if `keep` keys are held: the largest of them and the one offered
    /// cannot both be among the first, and one is left out.
    fn full(&mut self) -> bool {
        let full = self.keep.is_some_and(|keep| self.heap.len() >= keep);
        self.dropped |= full;
        full
    }

    /// The kept keys, in the reading's order.
    pub fn into_sorted_vec(self) -> Vec<OrderKey> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|ranked| ranked.key)
            .collect()
    }
}

/// Parses a message file's bytes; the error says why it is not a message.
///
/// The file is parsed once, without building a tree: the known fields are
/// taken as spans of the text (`payload` is its span with the whitespace
/// between tokens removed, not a re-serialization; `raw` is the text itself),
/// and other fields are checked and skipped. Reading a mailbox is mostly
/// this, so it is worth not allocating a value per JSON node.
pub fn parse(file: &str, bytes: Vec<u8>) -> Result<(Message, OrderKey), String> {
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8: invalid byte at offset {}",
            e.utf8_error().valid_up_to()
        )
    })?;
    let fields: StoredFields<'_> = serde_json::from_str(&text).map_err(|e| match e.classify() {
        // Only the top level can be of the wrong type: every field is
        // taken as raw JSON.
        serde_json::error::Category::Data => {
            format!("not a JSON object but {}", raw_kind_name(text.trim_start()))
        }
        _ => format!("not JSON: {e}"),
    })?;
    let string = |field: &str, value: Option<&RawValue>| -> Result<String, String> {
        match value {
            Some(raw) => serde_json::from_str::<String>(raw.get()).map_err(|_| {
                match raw_kind_name(raw.get()) {
                    // A string that is no text: it escapes half a
                    // surrogate pair (`"\ud800"`), which JSON's grammar
                    // allows (the document parsed, so nothing else is wrong).
                    "a string" => format!(
                        "field \"{field}\" is not text: it escapes half a surrogate pair \
                         (a \\u escape from \\ud800 to \\udfff without its other half)"
                    ),
                    kind => format!("field \"{field}\" must be a string, found {kind}"),
                }
            }),
            None => Err(format!("field \"{field}\" is missing")),
        }
    };
    let id = string("id", fields.id)?;
    let from = string("from", fields.from)?;
    let to = string("to", fields.to)?;
    let message_type = string("type", fields.message_type)?;
    let timestamp = string("timestamp", fields.timestamp)?;
    // Writers other than fmes may use any integer; deliver what fits a u8
    // rather than lose it, ordered by its value.
    let priority = match fields.priority {
        Some(raw) => match serde_json::from_str::<serde_json::Number>(raw.get()) {
            Ok(n) => n
                .as_u64()
                .and_then(|p| u8::try_from(p).ok())
                .ok_or_else(|| {
                    format!("field \"priority\" must be an integer from 0 to 255, found {n}")
                })?,
            Err(_) => {
                return Err(format!(
                    "field \"priority\" must be an integer, found {}",
                    raw_kind_name(raw.get())
                ));
            }
        },
        None => return Err("field \"priority\" is missing".to_string()),
    };
    let sent = UtcNanos::parse_timestamp(&timestamp).ok_or_else(|| {
        format!("field \"timestamp\" is {timestamp:?}, not a UTC time YYYY-MM-DDTHH:MM:SSZ")
    })?;
    let payload = compact(
        fields
            .payload
            .ok_or_else(|| "field \"payload\" is missing".to_string())?
            .get(),
    );
    let key = order_key(file, priority, sent);
    let message = Message {
        id,
        from,
        to,
        message_type,
        priority,
        timestamp,
        payload,
        file: file.to_string(),
        raw: text,
    };
    Ok((message, key))
}

/// The fields of a stored object that a reader uses, as spans of its text.
/// A field given twice counts once, the last time (as Python's `json` and
/// serde_json's `Value` read it).
#[derive(Default)]
struct StoredFields<'a> {
    id: Option<&'a RawValue>,
    from: Option<&'a RawValue>,
    to: Option<&'a RawValue>,
    message_type: Option<&'a RawValue>,
    priority: Option<&'a RawValue>,
    timestamp: Option<&'a RawValue>,
    payload: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for StoredFields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ObjectVisitor<'a> {
            type Value = StoredFields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = StoredFields::default();
                while let Some(field) = map.next_key::<FieldName>()? {
                    let slot = match field {
                        FieldName::Id => &mut fields.id,
                        FieldName::From => &mut fields.from,
                        FieldName::To => &mut fields.to,
                        FieldName::Type => &mut fields.message_type,
                        FieldName::Priority => &mut fields.priority,
                        FieldName::Timestamp => &mut fields.timestamp,
                        FieldName::Payload => &mut fields.payload,
                        FieldName::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value()?);
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(ObjectVisitor(PhantomData))
    }
}

/// A key of the stored object, told apart without allocating.
enum FieldName {
    Id,
    From,
    To,
    Type,
    Priority,
    Timestamp,
    Payload,
    Other,
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = FieldName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<FieldName, E> {
                Ok(match key {
                    "id" => FieldName::Id,
                    "from" => FieldName::From,
                    "to" => FieldName::To,
                    "type" => FieldName::Type,
                    "priority" => FieldName::Priority,
                    "timestamp" => FieldName::Timestamp,
                    "payload" => FieldName::Payload,
                    _ => FieldName::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Valid JSON text without the whitespace between its tokens: the compact
/// form of what a writer stored, its escapes and number spellings kept.
pub fn compact(json: &str) -> String {
    let bytes = json.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut run_start = 0;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.extend_from_slice(&bytes[run_start..i]);
            run_start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run_start..]);
    // Only ASCII whitespace bytes were left out of UTF-8 text.
    String::from_utf8(out).expect("removing ASCII whitespace keeps UTF-8 valid")
}

/// What kind of JSON value a (valid) JSON text is, from its first byte.
fn raw_kind_name(json: &str) -> &'static str {
    match json.as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
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
    fn the_stored_text_is_the_object_laid_out_as_python_does() {
        let new = new_message(5, UtcNanos(1_700_000_000_000_000_000));
        let mut expected = serde_json::to_string_pretty(&new.to_object()).unwrap();
        expected.push('\n');
        assert_eq!(new.stored_text(None).unwrap(), expected);
        assert!(
            expected.starts_with("{\n  \"id\": \"00000000-"),
            "{expected}"
        );

        let mut object = new.to_object();
        object["fmes_file"] = Value::from("5_x.json");
        let mut expected = serde_json::to_string_pretty(&object).unwrap();
        expected.push('\n');
        assert_eq!(new.stored_text(Some("5_x.json")).unwrap(), expected);

        // Payloads of every shape, and strings that need escapes.
        let payloads = [
            serde_json::json!(null),
            serde_json::json!(7),
            serde_json::json!(-1.5e300),
            serde_json::json!("line\nbreak \"quoted\" back\\slash \u{1} é"),
            serde_json::json!({}),
            serde_json::json!([]),
            serde_json::json!({"a": [], "b": {}, "c": [1, {"d": [true, false]}], "e": {"f": "g\n"}}),
            serde_json::json!([[["deep"]], {"x\ny": 1}]),
            serde_json::json!([[], [[]], {"a": {}}, [{}], {"b": [[], {"c": {"d": [[[1]]]}}]}]),
        ];
        for (i, payload) in payloads.into_iter().enumerate() {
            let mut new = new_message(9, UtcNanos(1_700_000_000_000_000_000));
            new.payload = payload;
            if i % 2 == 1 {
                new.id = "tab\there \"and\" \\".into();
                new.from = "é\u{7f}";
            }
            let file = (i % 3 == 0).then_some("5_\"x\".json");
            let mut object = new.to_object();
            if let Some(file) = file {
                object["fmes_file"] = Value::from(file);
            }
            let mut expected = serde_json::to_string_pretty(&object).unwrap();
            expected.push('\n');
            let (text, payload) = new.stored_text_and_payload(file).unwrap();
            assert_eq!(text, expected, "payload {i}");
            assert_eq!(
                compact(&text[payload]),
                new.payload.to_string(),
                "payload {i}"
            );
        }
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
    fn file_names_are_spelled_priority_stamp_sender_type_unique() {
        let new = new_message(5, UtcNanos(1_700_000_000_000_000_042));
        assert_eq!(
            new.file_name("0a0b0c0d"),
            format!(
                "5_20231114_221320.000000042Z_{}_{}_0a0b0c0d.json",
                new.from, new.message_type
            )
        );
    }

    #[test]
    fn parses_a_stored_message_keeping_extra_fields() {
        let new = new_message(5, UtcNanos(1_700_000_000_000_000_000));
        let mut object = new.to_object();
        object["reply_to"] = Value::from("abc");
        let file = new.file_name("0a0b0c0d");
        let (message, key) = parse(&file, object.to_string().into_bytes()).unwrap();
        assert_eq!(message.timestamp, "2023-11-14T22:13:20Z");
        assert_eq!(message.payload, r#"{"k":"é"}"#);
        assert!(message.raw.contains(r#""reply_to":"abc""#));
        assert_eq!(key.sent, UtcNanos(1_700_000_000_000_000_000));
    }

    #[test]
    fn string_fields_are_read_with_and_without_escapes() {
        let text = r#"{ "id" : "\u0061b\"c", "from": "é\\", "to":"b", "type": "",
            "priority": 5, "timestamp": "2023-11-14T22:13:20Z", "payload": null }"#;
        let (message, _) = parse("x.json", text.as_bytes().to_vec()).unwrap();
        assert_eq!(message.id, "ab\"c");
        assert_eq!(message.from, "é\\");
        assert_eq!(message.to, "b");
        assert_eq!(message.message_type, "");
        let error = parse("x.json", text.replace(r#""b""#, "7").into_bytes()).unwrap_err();
        assert_eq!(error, "field \"to\" must be a string, found a number");
        let half_pair = br#"{"id":"1","from":"a\ud800","to":"b","type":"T","priority":5,
            "timestamp":"2026-01-01T00:00:00Z","payload":{}}"#;
        let error = parse("x.json", half_pair.to_vec()).unwrap_err();
        assert!(
            error.starts_with("field \"from\" is not text: it escapes half a surrogate pair"),
            "{error}"
        );
    }

    #[test]
    fn payload_is_its_stored_text_made_compact_and_raw_the_whole_text() {
        // As the Python writer stores it: indented, an escape, an extra field,
        // a number spelled its own way, whitespace inside strings.
        let stored = "{\n  \"id\": \"x\",\n  \"from\": \"a\",\n  \"to\": \"b\",\n  \"type\": \"TASK\",\n  \"priority\": 5,\n  \"timestamp\": \"2024-01-01T00:00:00Z\",\n  \"payload\": {\n    \"text\": \"two  spaces, a \\\" quote\\\\\",\n    \"n\": 1E2,\n    \"caf\\u00e9\": [\n      1,\n      2\n    ]\n  },\n  \"reply_to\": \"a\"\n}\n";
        let (message, _) = parse("x.json", stored.as_bytes().to_vec()).unwrap();
        assert_eq!(
            message.payload,
            r#"{"text":"two  spaces, a \" quote\\","n":1E2,"caf\u00e9":[1,2]}"#
        );
        assert_eq!(message.raw, stored);
        let reread: Value = serde_json::from_str(&message.raw).unwrap();
        assert_eq!(reread, serde_json::from_str::<Value>(stored).unwrap());
    }

    #[test]
    fn a_field_given_twice_counts_the_last_time_and_escaped_keys_are_known() {
        let stored = br#"{"id":"x","from":"a","\u0074o":"b","type":"T","priority":9,"priority":2,
            "timestamp":"2024-01-01T00:00:00Z","payload":1,"payload":{"last":true}}"#;
        let (message, key) = parse("x.json", stored.to_vec()).unwrap();
        assert_eq!(message.to, "b");
        assert_eq!((message.priority, key.priority), (2, 2));
        assert_eq!(message.payload, r#"{"last":true}"#);
    }

    proptest::proptest! {
        /// Compacting any writer's layout gives what serde_json writes
        /// compactly for the same value.
        #[test]
        fn compact_of_pretty_text_is_the_compact_serialization(value in json_value()) {
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            proptest::prop_assert_eq!(compact(&pretty), value.to_string());
        }
    }

    proptest::proptest! {
        /// Strings are written as serde_json writes them, whichever way is
        /// taken; the quick check says "no escape" exactly when there is none.
        #[test]
        fn strings_are_escaped_as_serde_json_escapes_them(
            chars in proptest::collection::vec(
                proptest::sample::select(vec![
                    '\0', '\x1f', ' ', '!', '"', '#', '\\', ']', 'a', '\x7f', '\u{80}', 'é',
                    '\u{2028}', '😀',
                ]),
                0..40,
            ),
        ) {
            let value: String = chars.into_iter().collect();
            let mut text = Vec::new();
            push_json_string(&mut text, &value);
            let expected = serde_json::to_string(&value).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(text).unwrap(), expected.clone());
            proptest::prop_assert_eq!(
                needs_no_escape(value.as_bytes()),
                expected == format!("\"{value}\"")
            );
        }
    }

    proptest::proptest! {
        /// The first keys kept are the first of all offered, in order, with
        /// `dropped` saying whether any was left out; fmes names and keys
        /// from contents compete alike.
        #[test]
        fn first_keys_are_the_smallest_offered(
            offers in proptest::collection::vec((1u8..=9, 0u64..50, proptest::bool::ANY), 0..60),
            keep in proptest::option::of(0usize..12),
        ) {
            let mut first = FirstKeys::new(keep);
            let mut all = Vec::new();
            for (i, (priority, seconds, by_name)) in offers.iter().enumerate() {
                let sent = UtcNanos(1_700_000_000_000_000_000 + seconds * 1_000_000_000);
                let name = new_message(*priority, sent).file_name(&format!("{i:08x}"));
                let key = key_from_fmes_name(&name).unwrap();
                if *by_name {
                    proptest::prop_assert!(first.offer_name(&name));
                } else {
                    first.offer(key.clone());
                }
                all.push(key);
            }
            proptest::prop_assert!(!first.offer_name("5_20240101_120000_claude_TASK.json"));
            all.sort();
            let kept = keep.unwrap_or(usize::MAX);
            proptest::prop_assert_eq!(first.dropped, all.len() > kept);
            all.truncate(kept);
            proptest::prop_assert_eq!(first.into_sorted_vec(), all);
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[ \t\n\"\\\\a-zé{}\\[\\],:]{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::vec(("[ a-z\"\\\\]{0,6}", inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
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
            let err = parse("x.json", bytes.to_vec()).unwrap_err();
            assert!(err.contains(reason), "{err:?} should contain {reason:?}");
        }
    }
}
