//! Every Adaptive Card rerun-bot sends to Teams is built here, one function each.
//!
//! (Skeleton with the agreed API so the adapter builds; the renderer replaces it.)

use serde_json::{Value, json};

use crate::chat::{Form, FormValues, Outgoing, Reply};

pub type Names<'a> = &'a dyn Fn(&str) -> Option<String>;
pub const CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
pub const DIALOG_SUBMIT_VERB: &str = "form_submit";

fn text_card(text: &str) -> Value {
    json!({"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": text, "wrap": true}]})
}

pub fn message(_message: &Outgoing<'_>, _names: Names) -> Value {
    text_card("rerun-bot")
}

pub fn reply(reply: &Reply, names: Names) -> Value {
    text_card(&reply_text(reply, names))
}

pub fn reply_text(reply: &Reply, _names: Names) -> String {
    match reply {
        Reply::Ephemeral(t) => t.clone(),
        _ => String::new(),
    }
}

pub fn dialog(_form: &Form, _values: &FormValues, _errors: &[(&str, String)]) -> Value {
    text_card("form")
}

pub fn dialog_title(_form: &Form) -> String {
    "Rerun".into()
}

pub fn form_submission(data: &Value) -> Option<(Form, FormValues)> {
    let form: Form = serde_json::from_value(data["form"].clone()).ok()?;
    Some((form, FormValues::default()))
}

pub fn attachment(card: Value) -> Value {
    json!({"contentType": CONTENT_TYPE, "content": card})
}
