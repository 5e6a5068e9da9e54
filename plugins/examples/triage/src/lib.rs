//! A dispatcher: each TASK whose payload is an object with `"assign_to":
//! "<agent>"` is forwarded to that agent, with the same priority; a TASK
//! without one is answered with a REPORT saying so. Which agents it may
//! route to is the policy's `allowed_recipients`.

use fmes_plugin::{Agent, Level, Message};

struct Triage;

/// The string value of `"assign_to"` in a JSON object, if there is one.
/// (A plugin may use any JSON library; this one keeps the example small.)
fn assignee(payload: &str) -> Option<&str> {
    let after = payload.split_once("\"assign_to\"")?.1;
    let value = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let end = value.find('"')?;
    Some(&value[..end])
}

impl Agent for Triage {
    fn handle(message: Message) -> Result<(), String> {
        if message.type_ != "TASK" {
            return Ok(());
        }
        match assignee(&message.payload) {
            Some(agent) => {
                let file = fmes_plugin::send(
                    agent,
                    Some("TASK"),
                    Some(message.priority),
                    &message.payload,
                )
                .map_err(|e| format!("cannot forward to {agent}: {e}"))?;
                fmes_plugin::log(
                    Level::Info,
                    &format!("routed {} to {agent} as {file}", message.id),
                );
            }
            None => {
                let report = format!(
                    r#"{{"in_reply_to": "{}", "status": "unassigned", "hint": "add \"assign_to\": \"<agent>\" to the task"}}"#,
                    message.id
                );
                fmes_plugin::reply(Some("REPORT"), &report).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

fmes_plugin::export_agent!(Triage);
