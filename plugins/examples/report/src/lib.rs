//! Answers each TASK with a REPORT to its sender; ignores other types.

use fmes_plugin::{Agent, Level, Message};

struct ReportAgent;

impl Agent for ReportAgent {
    fn handle(message: Message) -> Result<(), String> {
        if message.type_ != "TASK" {
            fmes_plugin::log(Level::Debug, &format!("ignoring a {}", message.type_));
            return Ok(());
        }
        let report = format!(
            r#"{{"in_reply_to": "{}", "status": "done", "by": "{}", "task": {}}}"#,
            message.id,
            fmes_plugin::whoami(),
            message.payload
        );
        let file = fmes_plugin::reply(Some("REPORT"), &report).map_err(|e| e.to_string())?;
        fmes_plugin::log(
            Level::Info,
            &format!("reported on {} as {file}", message.id),
        );
        Ok(())
    }
}

fmes_plugin::export_agent!(ReportAgent);
