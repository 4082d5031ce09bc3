//! The approval card of a request (rerun or stop) and `/rerun history`.

use super::*;

/// The approval card of a rerun request; buttons only while it is pending.
pub fn approval_card(req: &RerunRequest, names: Names) -> Value {
    let m = Teams { names };
    let what = req.subject();
    let mut body = vec![heading(&match &req.stop {
        Some(_) => format!("🛑 Stop request: {what}"),
        None => format!("🔁 Rerun request: {what}"),
    })];
    let mut fields = vec![
        ("Requested by", m.user(&req.requested_by)),
        ("CronJob", m.code(&what, 300)),
        (
            "Ticket",
            req.ticket
                .as_deref()
                .map(|t| wording::ticket(&m, t, req.ticket_url.as_deref(), 300))
                .unwrap_or_else(|| "_none_".into()),
        ),
        ("Expires", when(req.expires_at)),
    ];
    match (&req.stop, &req.source_job) {
        (Some(stop), _) => fields.push(("Job to stop", m.code(&stop.job, 300))),
        (None, Some(job)) => fields.push(("Failed Job", m.code(job, 300))),
        (None, None) => {}
    }
    body.push(facts(fields));
    body.push(text_block(&format!(
        "**Reason:** {}",
        m.text(&req.reason, 2000)
    )));
    if let Some(stop) = &req.stop {
        body.push(text_block(&wording::stop::what_it_does(&m, stop)));
    } else {
        body.push(text_block(&wording::changes_title(&m, &req.diff)));
        body.extend(paragraphs(wording::diff_lines(&m, &req.diff)));
    }
    let mut status = text_block(&wording::request_status(&m, req));
    status["separator"] = true.into();
    body.push(status);
    let mut actions = Vec::new();
    if req.state == State::Pending {
        actions.push(execute("approve", "Approve", &req.id, Some("positive")));
        if let Some(hold) = &req.held {
            let mut warning = text_block(&wording::held_warning(&m, hold));
            warning["color"] = "warning".into();
            body.push(warning);
            actions.push(execute(
                "approve_held",
                "Approve during hold",
                &req.id,
                Some("destructive"),
            ));
        }
        actions.push(execute("deny", "Deny", &req.id, Some("destructive")));
        actions.push(execute("cancel", "Cancel request", &req.id, None));
    }
    card(body, actions)
}

/// Where a request's thread is, as a link: Teams or Slack, by its channel id.
pub(super) fn thread_link(req: &RerunRequest) -> Option<String> {
    let ts = req.thread()?;
    if req.channel.contains(':') {
        let channel: String =
            url::form_urlencoded::byte_serialize(req.channel.as_bytes()).collect();
        let ts: String = url::form_urlencoded::byte_serialize(ts.as_bytes()).collect();
        Some(format!(
            "https://teams.microsoft.com/l/message/{channel}/{ts}"
        ))
    } else {
        Some(format!(
            "https://slack.com/archives/{}/p{}",
            req.channel,
            ts.replace('.', "")
        ))
    }
}

/// `/rerun history`: one entry per request, newest first.
pub fn history(requests: &[RerunRequest], names: Names) -> Value {
    if requests.is_empty() {
        return card(vec![text_block("No rerun requests yet.")], vec![]);
    }
    let m = Teams { names };
    let mut body = vec![text_block(&format!(
        "**Last {} rerun requests**",
        requests.len()
    ))];
    for req in requests.iter().take(40) {
        let mut first = format!(
            "{} · {} · **{}{}** · asked by {}",
            m.code(&req.id, 20),
            m.code(&req.subject(), 300),
            if req.stop.is_some() { "stop " } else { "" },
            req.state.as_str(),
            m.user(&req.requested_by)
        );
        if let Some(by) = &req.approved_by {
            first.push_str(&format!(" · approved by {}", m.user(by)));
        } else if let Some(by) = &req.decided_by
            && req.state == State::Denied
        {
            first.push_str(&format!(" · denied by {}", m.user(by)));
        }
        first.push_str(&format!(" · {}", when(req.requested_at)));
        let mut lines = vec![first];
        let mut reason = format!("Reason: {}", m.text(&req.reason, 500));
        if let Some(t) = &req.ticket {
            reason.push_str(&format!(
                " · ticket {}",
                wording::ticket(&m, t, req.ticket_url.as_deref(), 200)
            ));
        }
        lines.push(reason);
        let changes = wording::diff_lines(&m, &req.diff);
        if !changes.is_empty() {
            lines.push(format!("Changes: {}", changes.join("; ")));
        }
        let mut job = String::new();
        if let Some(j) = &req.job {
            job.push_str(&format!("Job {}", m.code(j, 100)));
        }
        if let Some(note) = &req.note {
            job.push_str(&format!(" — {}", m.text(note, 300)));
        }
        if let Some(link) = thread_link(req) {
            job.push_str(&format!(" · [thread]({link})"));
        }
        if !job.is_empty() {
            lines.push(job.trim_start_matches([' ', '·']).to_string());
        }
        body.push(json!({
            "type": "Container",
            "separator": true,
            "items": paragraphs(lines),
        }));
    }
    card(body, vec![])
}
