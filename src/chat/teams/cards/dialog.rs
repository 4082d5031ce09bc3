//! Dialogs (task modules): the rerun and stop forms as Adaptive Cards, and
//! reading a submitted one back.

use super::*;

/// The dialog title (Teams task module title).
pub fn dialog_title(form: &Form) -> String {
    let title = match form.kind {
        FormKind::RerunReason => format!("Rerun {}", form.cronjob),
        FormKind::RerunOverrides => format!("Rerun {} with changes", form.cronjob),
        FormKind::StopReason => format!("Stop a run of {}", form.cronjob),
    };
    truncate_chars(&title, 100)
}

pub(super) fn text_input(
    id: &str,
    label: &str,
    value: &str,
    multiline: bool,
    required: bool,
    placeholder: Option<&str>,
) -> Value {
    let mut input = json!({
        "type": "Input.Text",
        "id": id,
        "label": label,
        "isMultiline": multiline,
    });
    if !value.is_empty() {
        input["value"] = truncate_chars(value, 3000).into();
    }
    if let Some(p) = placeholder {
        input["placeholder"] = p.into();
    }
    if required {
        input["isRequired"] = true.into();
        input["errorMessage"] = format!("{label} is required.").into();
    }
    input
}

/// The dialog (task module) card for a form, filled with `values`, each error shown under its field.
pub fn dialog(form: &Form, values: &FormValues, errors: &[(&str, String)]) -> Value {
    let mut body = vec![text_block(&format!(
        "{} **{}** — a second person must approve it.",
        if form.kind == FormKind::StopReason {
            "Stop a run of CronJob"
        } else {
            "Rerun CronJob"
        },
        escape(&truncate_chars(
            &format!("{}/{}", form.namespace, form.cronjob),
            300
        ))
    ))];
    let context: Vec<String> = form
        .context
        .iter()
        .flat_map(|c| c.lines())
        .take(20)
        .map(|line| escape_line(&truncate_chars(line, 500)))
        .collect();
    for (n, line) in context.iter().enumerate() {
        let mut block = subtle(line);
        if n > 0 {
            block["spacing"] = "None".into();
        }
        body.push(block);
    }
    let fields = ["args", "args_mode", "env", "container", "reason", "ticket"];
    // Errors about something that is no field go on top.
    for (field, error) in errors.iter().filter(|(f, _)| !fields.contains(f)) {
        body.push(error_block(&format!("{field}: {error}")));
    }
    let push = |body: &mut Vec<Value>, input: Value, id: &str| {
        body.push(input);
        for (_, error) in errors.iter().filter(|(f, _)| *f == id) {
            body.push(error_block(error));
        }
    };
    if form.kind == FormKind::RerunOverrides {
        push(
            &mut body,
            text_input(
                "args",
                "Arguments, one per line",
                &values.args,
                true,
                false,
                Some("Appended to the container's args, or replacing them (below)."),
            ),
            "args",
        );
        push(
            &mut body,
            json!({
                "type": "Input.ChoiceSet",
                "id": "args_mode",
                "label": "Arguments mode",
                "style": "expanded",
                "isMultiSelect": false,
                "value": match values.args_mode {
                    ArgsMode::Append => "append",
                    ArgsMode::Replace => "replace",
                },
                "choices": [
                    {"title": "Append to the current args", "value": "append"},
                    {"title": "Replace the current args", "value": "replace"},
                ],
            }),
            "args_mode",
        );
        push(
            &mut body,
            text_input(
                "env",
                "Environment, KEY=VALUE per line",
                &values.env,
                true,
                false,
                Some("Sets or overrides variables of the container."),
            ),
            "env",
        );
        if form.containers.len() > 1 {
            let initial = values
                .container
                .as_deref()
                .filter(|c| form.containers.iter().any(|x| x == c))
                .unwrap_or(&form.containers[0]);
            push(
                &mut body,
                json!({
                    "type": "Input.ChoiceSet",
                    "id": "container",
                    "label": "Container",
                    "style": "compact",
                    "isMultiSelect": false,
                    "value": initial,
                    "choices": form
                        .containers
                        .iter()
                        .take(100)
                        .map(|c| json!({"title": c, "value": c}))
                        .collect::<Vec<_>>(),
                }),
                "container",
            );
        }
    }
    push(
        &mut body,
        text_input(
            "reason",
            "Reason (root cause)",
            &values.reason,
            true,
            true,
            Some(form.kind.reason_hint()),
        ),
        "reason",
    );
    push(
        &mut body,
        text_input(
            "ticket",
            "Ticket or incident",
            &values.ticket,
            false,
            form.require_ticket,
            None,
        ),
        "ticket",
    );
    let form_json = serde_json::to_value(form).unwrap_or(Value::Null);
    card(
        body,
        vec![json!({
            "type": "Action.Submit",
            "title": form.kind.submit_label(),
            "style": "positive",
            "data": {"verb": DIALOG_SUBMIT_VERB, "form": form_json},
        })],
    )
}

pub(super) fn error_block(error: &str) -> Value {
    json!({
        "type": "TextBlock",
        "text": escape(&truncate_chars(error, 1000)),
        "wrap": true,
        "color": "attention",
        "spacing": "Small",
        "size": "Small",
    })
}

/// What a `task/submit` carries in `value.data`, back into the form and its values; None if not ours.
pub fn form_submission(data: &Value) -> Option<(Form, FormValues)> {
    if data.get("verb")?.as_str()? != DIALOG_SUBMIT_VERB {
        return None;
    }
    let form: Form = serde_json::from_value(data.get("form")?.clone()).ok()?;
    // Multiline inputs may come back with Windows line ends.
    let text = |id: &str| {
        data.get(id)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .replace("\r\n", "\n")
    };
    let container = data
        .get("container")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let values = FormValues {
        reason: text("reason"),
        ticket: text("ticket"),
        args: text("args"),
        args_mode: match data.get("args_mode").and_then(Value::as_str) {
            Some("replace") => ArgsMode::Replace,
            _ => ArgsMode::Append,
        },
        env: text("env"),
        container,
    };
    Some((form, values))
}
