//! The rerun and stop forms as modals, and reading a submitted one back.

use super::*;

fn plain(text: &str) -> SlackBlockPlainTextOnly {
    SlackBlockPlainText::new(text.to_string()).into()
}

fn text_input(
    id: &str,
    label: &str,
    initial: &str,
    multiline: bool,
    optional: bool,
    hint: Option<&str>,
) -> SlackBlock {
    let mut el = SlackBlockPlainTextInputElement::new().with_action_id(id.into());
    el.multiline = Some(multiline);
    if !initial.is_empty() {
        el.initial_value = Some(truncate_chars(initial, 3000));
    }
    let mut block = SlackInputBlock::new(plain(label), SlackInputBlockElement::PlainTextInput(el))
        .with_block_id(id.into())
        .with_optional(optional);
    block.hint = hint.map(plain);
    block.into()
}

fn choice(value: &str, label: &str) -> SlackBlockChoiceItem<SlackBlockPlainTextOnly> {
    SlackBlockChoiceItem::new(plain(label), value.to_string())
}

/// A rerun form as a Slack modal (`callback_id` = the form's id).
pub fn form_view(form: &Form) -> SlackView {
    let title = match form.kind {
        FormKind::RerunReason => "Rerun",
        FormKind::RerunOverrides => "Rerun with changes",
        FormKind::StopReason => "Stop this run",
    };
    let mut blocks: Vec<SlackBlock> = vec![section(format!(
        "{} {} — a second person must approve it.",
        if form.kind == FormKind::StopReason {
            "Stop a run of CronJob"
        } else {
            "Rerun CronJob"
        },
        code(&format!("{}/{}", form.namespace, form.cronjob), 300)
    ))];
    if !form.context.is_empty() {
        blocks.push(context(escape_cut(&form.context.join("\n"), 2000)));
    }
    let v = &form.prefill;
    if form.kind == FormKind::RerunOverrides {
        blocks.push(text_input(
            "args",
            "Arguments, one per line",
            &v.args,
            true,
            true,
            Some("Appended to the container's args, or replacing them (below)."),
        ));
        let append = SlackBlockChoiceItem::new(
            SlackBlockText::from(SlackBlockPlainText::new(
                "Append to the current args".into(),
            )),
            "append".into(),
        );
        let replace = SlackBlockChoiceItem::new(
            SlackBlockText::from(SlackBlockPlainText::new("Replace the current args".into())),
            "replace".into(),
        );
        let initial = match v.args_mode {
            ArgsMode::Append => append.clone(),
            ArgsMode::Replace => replace.clone(),
        };
        let mut radio = SlackBlockRadioButtonsElement::new(vec![append, replace])
            .with_action_id("args_mode".into());
        radio.initial_option = Some(initial);
        blocks.push(
            SlackInputBlock::new(
                plain("Arguments mode"),
                SlackInputBlockElement::RadioButtons(radio),
            )
            .with_block_id("args_mode".into())
            .into(),
        );
        blocks.push(text_input(
            "env",
            "Environment, KEY=VALUE per line",
            &v.env,
            true,
            true,
            Some("Sets or overrides variables of the container."),
        ));
        if form.containers.len() > 1 {
            let options: Vec<_> = form
                .containers
                .iter()
                .take(100)
                .map(|c| choice(c, c))
                .collect();
            let initial = v
                .container
                .as_deref()
                .filter(|c| form.containers.iter().any(|x| x == c))
                .unwrap_or(&form.containers[0]);
            let mut select = SlackBlockStaticSelectElement::new()
                .with_action_id("container".into())
                .with_options(options);
            select.initial_option = Some(choice(initial, initial));
            blocks.push(
                SlackInputBlock::new(
                    plain("Container"),
                    SlackInputBlockElement::StaticSelect(select),
                )
                .with_block_id("container".into())
                .into(),
            );
        }
    }
    blocks.push(text_input(
        "reason",
        "Reason (root cause)",
        &v.reason,
        true,
        false,
        Some(form.kind.reason_hint()),
    ));
    blocks.push(text_input(
        "ticket",
        "Ticket or incident",
        &v.ticket,
        false,
        !form.require_ticket,
        None,
    ));
    SlackView::Modal(
        SlackModalView::new(plain(title), blocks)
            .with_submit(plain(form.kind.submit_label()))
            .with_close(plain("Cancel"))
            .with_callback_id(form.kind.id().into())
            .with_private_metadata(form.metadata.clone()),
    )
}

/// The typed values of a submitted rerun form.
pub fn form_values(state: Option<&SlackViewState>) -> FormValues {
    let get = |id: &str| {
        state
            .and_then(|s| s.values.get(&SlackBlockId::new(id.into())))
            .and_then(|m| m.get(&SlackActionId::new(id.into())))
    };
    let text = |id: &str| get(id).and_then(|v| v.value.clone()).unwrap_or_default();
    let option = |id: &str| {
        get(id)
            .and_then(|v| v.selected_option.as_ref())
            .map(|o| o.value.clone())
    };
    FormValues {
        reason: text("reason"),
        ticket: text("ticket"),
        args: text("args"),
        args_mode: match option("args_mode").as_deref() {
            Some("replace") => ArgsMode::Replace,
            _ => ArgsMode::Append,
        },
        env: text("env"),
        container: option("container"),
    }
}
