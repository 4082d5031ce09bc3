//! The `/cronjobs` status board as an Adaptive Card: one `Container` per
//! CronJob (its name and state, then its schedule and times), not a `Table`:
//! Teams on iOS and Android shows a 1.5 `Table` blank
//! (microsoft/AdaptiveCards#8853). `/cronjobs <name>`: a `FactSet`, the
//! warnings, and one line per run.

use serde_json::{Value, json};

use super::{card, escape, facts, heading, subtle, text_block};
use crate::core::board::{self, Detail, Page, View};
use crate::core::text::truncate_chars;

/// Shared words carry Slack-style `code` marks; Teams' TextBlock markdown has
/// no inline code, so they go and the rest is escaped.
fn plain(s: &str, max: usize) -> String {
    escape(&truncate_chars(&s.replace('`', ""), max))
}

/// The card of the board or of one CronJob.
pub fn view(view: &View) -> Value {
    match view {
        View::Page(page) => board_page(page),
        View::Detail(detail) => cronjob_detail(detail),
    }
}

fn board_page(page: &Page) -> Value {
    let mut body = vec![heading(&page.title().replace('`', ""))];
    for row in &page.rows {
        let [
            name,
            schedule,
            next,
            success,
            failure,
            streak,
            typical,
            state,
        ] = board::cells(row, page.now);
        body.push(json!({
            "type": "Container",
            "separator": true,
            "items": [
                text_block(&format!("**{}** · {}", plain(&name, 300), plain(&state, 500))),
                subtle(&format!(
                    "{} · next {} · last success {} · last failure {} · {} in a row · typical {}",
                    plain(&schedule, 300),
                    plain(&next, 50),
                    plain(&success, 50),
                    plain(&failure, 50),
                    plain(&streak, 20),
                    plain(&typical, 50),
                )),
            ],
        }));
    }
    if let Some(footer) = page.footer() {
        body.push(subtle(&plain(&footer, 500)));
    }
    card(body, vec![])
}

fn cronjob_detail(d: &Detail) -> Value {
    let mut body = vec![heading(&format!("CronJob {}", d.row.key()))];
    body.push(facts(
        d.facts()
            .into_iter()
            .map(|(label, value)| (label, plain(&value, 1000)))
            .collect(),
    ));
    for w in d.warnings() {
        body.push(json!({
            "type": "TextBlock",
            "text": plain(&w, 1000),
            "wrap": true,
            "color": "Warning",
        }));
    }
    if d.runs.is_empty() {
        body.push(subtle("No finished run of it is known yet."));
    } else {
        body.push(text_block(&format!(
            "**Last {} runs**, newest first",
            d.runs.len()
        )));
        for run in &d.runs {
            let [job, outcome, started, duration] = board::run_cells(run, d.now);
            body.push(json!({
                "type": "TextBlock",
                "text": format!(
                    "{} · {} · started {} · {}",
                    plain(&job, 100),
                    plain(&outcome, 50),
                    plain(&started, 50),
                    plain(&duration, 50)
                ),
                "wrap": true,
                "spacing": "None",
            }));
        }
    }
    card(body, vec![])
}

/// The board as plain text (an invoke answer that is a message).
pub fn text(view: &View) -> String {
    match view {
        View::Page(page) => {
            let mut lines = vec![page.title().replace('`', "")];
            lines.extend(page.rows.iter().map(|r| {
                let c = board::cells(r, page.now);
                format!("{} · {} · {}", c[0], c[1], c[7])
            }));
            if let Some(footer) = page.footer() {
                lines.push(footer.replace('`', ""));
            }
            lines.join("\n")
        }
        View::Detail(d) => {
            let mut lines = vec![format!("CronJob {}", d.row.key())];
            lines.extend(d.facts().into_iter().map(|(k, v)| format!("{k}: {v}")));
            lines.extend(d.warnings());
            lines.extend(
                d.runs
                    .iter()
                    .map(|r| board::run_cells(r, d.now).join(" · ")),
            );
            lines.join("\n")
        }
    }
}
