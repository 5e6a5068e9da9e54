//! The component's exports: WIT types at the edge, the plain queue inside.

use std::time::Duration;

use crate::fs::WasiFs;
use crate::queue::{self, Queue};

wit_bindgen::generate!({
    path: "../wit",
    world: "queue",
});

use exports::fmes::queue::admin::{self, CleanupReport};
use exports::fmes::queue::messages::{self, Received, SendRequest};
use exports::fmes::queue::types::{self, Message, QueueError};

/// Where the host preopens the queue's root; nothing else is reachable.
const ROOT: &str = "/_COMM";

struct Component;

export!(Component);

fn queue() -> Result<Queue<WasiFs>, crate::QueueError> {
    let fs = WasiFs::preopen(ROOT).map_err(|e| crate::QueueError::io("open", "", e))?;
    Ok(Queue::new(fs))
}

impl admin::Guest for Component {
    fn init(agents: Vec<String>) -> Result<Vec<String>, QueueError> {
        Ok(queue()?.init(&agents)?)
    }

    fn agents() -> Result<Vec<String>, QueueError> {
        Ok(queue()?.agents()?)
    }

    fn cleanup(max_age_seconds: u64) -> Result<CleanupReport, QueueError> {
        let report = queue()?.cleanup(Duration::from_secs(max_age_seconds))?;
        Ok(CleanupReport {
            archived: report.archived,
            removed_temporary: report.removed_temporary,
        })
    }
}

impl messages::Guest for Component {
    fn send(request: SendRequest) -> Result<Message, QueueError> {
        let request = queue::SendRequest {
            from: request.from,
            to: request.to,
            message_type: request.type_,
            priority: request.priority,
            payload: request.payload,
            max_payload_bytes: request.max_payload_bytes,
        };
        Ok(queue()?.send(&request)?.into())
    }

    fn broadcast(
        from: String,
        message_type: Option<String>,
        payload: String,
        max_payload_bytes: Option<u64>,
    ) -> Result<Vec<Message>, QueueError> {
        let sent =
            queue()?.broadcast(&from, message_type.as_deref(), &payload, max_payload_bytes)?;
        Ok(sent.into_iter().map(Message::from).collect())
    }

    fn receive(
        agent: String,
        message_type: Option<String>,
        limit: Option<u32>,
    ) -> Result<Received, QueueError> {
        let received = queue()?.receive(&agent, message_type.as_deref(), limit)?;
        Ok(Received {
            messages: received.messages.into_iter().map(Message::from).collect(),
            malformed: received
                .malformed
                .into_iter()
                .map(|m| types::MalformedFile {
                    file: m.file,
                    reason: m.reason,
                })
                .collect(),
        })
    }

    fn peek(agent: String) -> Result<u32, QueueError> {
        Ok(queue()?.peek(&agent)?)
    }

    fn archive(agent: String, file: String) -> Result<String, QueueError> {
        Ok(queue()?.archive(&agent, &file)?)
    }
}

impl From<crate::Message> for Message {
    fn from(m: crate::Message) -> Self {
        Message {
            id: m.id,
            from: m.from,
            to: m.to,
            type_: m.message_type,
            priority: m.priority,
            timestamp: m.timestamp,
            payload: m.payload,
            file: m.file,
            raw: m.raw,
        }
    }
}

impl From<crate::QueueError> for QueueError {
    fn from(e: crate::QueueError) -> Self {
        use crate::QueueError as E;
        match e {
            E::InvalidAgentName(name) => QueueError::InvalidAgentName(name),
            E::UnknownAgent { name, known } => {
                QueueError::UnknownAgent(types::UnknownAgent { name, known })
            }
            E::InvalidPriority(p) => QueueError::InvalidPriority(p),
            E::InvalidType(t) => QueueError::InvalidType(t),
            E::InvalidPayload(why) => QueueError::InvalidPayload(why),
            E::PayloadTooLarge { size, limit } => {
                QueueError::PayloadTooLarge(types::PayloadTooLarge { size, limit })
            }
            E::InvalidFileName(f) => QueueError::InvalidFileName(f),
            E::NotFound(what) => QueueError::NotFound(what),
            E::InvalidLayout(what) => QueueError::InvalidLayout(what),
            E::Io(what) => QueueError::Io(what),
        }
    }
}
