//! The approval card of a request (rerun or stop) and `/rerun history`.

use super::*;

/// The changes of a rerun against the CronJob's template, one line each.
pub fn diff_lines(diff: &Diff) -> Vec<String> {
    wording::diff_lines(&Slack, diff)
}

/// What a request's card says about where it stands.
pub fn request_status(req: &RerunRequest) -> String {
    wording::request_status(&Slack, req)
}

/// The approval card of a rerun request; buttons only while it is pending.
pub fn approval_card(req: &RerunRequest) -> Rendered {
    let what = format!("{}/{}", req.namespace, req.cronjob);
    let header = match &req.stop {
        Some(_) => format!("🛑 Stop request: {what}"),
        None => format!("🔁 Rerun request: {what}"),
    };
    let mut blocks: Vec<SlackBlock> = vec![
        SlackHeaderBlock::new(SlackBlockPlainText::new(truncate_chars(&header, HEADER_MAX)).into())
            .into(),
    ];
    let mut fields = vec![
        format!("*Requested by*\n<@{}>", req.requested_by),
        format!("*CronJob*\n{}", code(&what, 300)),
        format!(
            "*Ticket*\n{}",
            req.ticket
                .as_deref()
                .map(|t| wording::ticket(&Slack, t, req.ticket_url.as_deref(), 300))
                .unwrap_or_else(|| "_none_".into())
        ),
        format!("*Expires*\n{}", when(req.expires_at)),
    ];
    match (&req.stop, &req.source_job) {
        (Some(stop), _) => fields.push(format!("*Job to stop*\n{}", code(&stop.job, 300))),
        (None, Some(job)) => fields.push(format!("*Failed Job*\n{}", code(job, 300))),
        (None, None) => {}
    }
    blocks.push(
        SlackSectionBlock::new()
            .with_fields(fields.into_iter().map(md).collect())
            .into(),
    );
    blocks.push(section(format!(
        "*Reason:* {}",
        escape_cut(&req.reason, 2000)
    )));
    if let Some(stop) = &req.stop {
        blocks.push(section(wording::stop::what_it_does(&Slack, stop)));
    } else {
        let changes = diff_lines(&req.diff);
        let title = wording::changes_title(&Slack, &req.diff);
        blocks.push(section(truncate_chars(
            &if changes.is_empty() {
                title
            } else {
                format!("{title}\n{}", changes.join("\n"))
            },
            SECTION_TEXT_MAX,
        )));
    }
    blocks.push(context(request_status(req)));
    if req.state == State::Pending {
        let mut buttons = vec![
            button(
                "approve",
                "Approve",
                &req.id,
                Some(SlackBlockButtonStyle::Primary),
            ),
            button("deny", "Deny", &req.id, Some(SlackBlockButtonStyle::Danger)),
            button("cancel", "Cancel request", &req.id, None),
        ];
        if let Some(hold) = &req.held {
            blocks.push(section(wording::held_warning(&Slack, hold)));
            buttons.insert(
                1,
                button(
                    "approve_held",
                    "Approve during hold",
                    &req.id,
                    Some(SlackBlockButtonStyle::Danger),
                ),
            );
        }
        blocks.push(
            SlackActionsBlock::new(buttons)
                .with_block_id("request_actions".into())
                .into(),
        );
    }
    Rendered {
        text: escape_cut(
            &format!(
                "{} request for {what} by {}: {}",
                if req.stop.is_some() { "Stop" } else { "Rerun" },
                req.requested_by,
                req.state.as_str()
            ),
            500,
        ),
        blocks,
    }
}

/// A link to a message (Slack redirects it to the workspace).
fn permalink(channel: &str, ts: &str) -> String {
    format!(
        "https://slack.com/archives/{channel}/p{}",
        ts.replace('.', "")
    )
}

/// `/rerun history`: one section per request, newest first.
pub fn history(requests: &[RerunRequest]) -> Rendered {
    if requests.is_empty() {
        return notice("No rerun requests yet.");
    }
    let mut blocks = vec![section(format!("*Last {} rerun requests*", requests.len()))];
    for req in requests.iter().take(40) {
        let mut line = format!(
            "{} {} · *{}{}* · asked by <@{}>",
            code(&req.id, 20),
            code(&req.subject(), 300),
            if req.stop.is_some() { "stop " } else { "" },
            req.state.as_str(),
            req.requested_by
        );
        if let Some(by) = &req.approved_by {
            line.push_str(&format!(" · approved by <@{by}>"));
        } else if let Some(by) = &req.decided_by
            && req.state == State::Denied
        {
            line.push_str(&format!(" · denied by <@{by}>"));
        }
        line.push_str(&format!(" · {}", when(req.requested_at)));
        line.push_str(&format!("\nReason: {}", escape_cut(&req.reason, 500)));
        if let Some(t) = &req.ticket {
            line.push_str(&format!(
                " · ticket {}",
                wording::ticket(&Slack, t, req.ticket_url.as_deref(), 200)
            ));
        }
        let changes = diff_lines(&req.diff);
        if !changes.is_empty() {
            line.push_str(&format!("\nChanges: {}", changes.join("; ")));
        }
        if let Some(job) = &req.job {
            line.push_str(&format!("\nJob {}", code(job, 100)));
        }
        if let Some(note) = &req.note {
            line.push_str(&format!(" — {}", escape_cut(note, 300)));
        }
        if let Some(ts) = req.thread() {
            line.push_str(&format!(" · <{}|thread>", permalink(&req.channel, ts)));
        }
        blocks.push(section(truncate_chars(&line, SECTION_TEXT_MAX)));
    }
    Rendered {
        text: format!("Last {} rerun requests", requests.len()),
        blocks,
    }
}
