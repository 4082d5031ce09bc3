//! The `/cronjobs` status board in Block Kit: a title, one `table` block
//! (header row plus at most 50 CronJobs: Slack allows 100 rows and one table
//! per message) and the page line; `/cronjobs <name>` as fields, warnings and
//! a table of its last runs. Cells are `raw_text`: Slack shows them as typed,
//! so nothing in them is markup.

use slack_morphism::prelude::*;

use super::{FIELD_MAX, Rendered, SECTION_TEXT_MAX, context, escape_cut, md, section};
use crate::core::board::{self, Detail, HEADERS, Page, RUN_HEADERS, View};
use crate::core::text::truncate_chars;

/// The longest cell text (Slack's table cells take far more; rows stay readable).
const CELL_MAX: usize = 200;

fn table<const N: usize>(headers: [&str; N], rows: Vec<[String; N]>, id: &str) -> SlackBlock {
    let mut all: Vec<Vec<SlackTableCell>> = vec![headers.iter().map(|h| (*h).into()).collect()];
    all.extend(rows.into_iter().map(|r| {
        r.into_iter()
            .map(|c| SlackTableCell::from(truncate_chars(&c, CELL_MAX)))
            .collect()
    }));
    SlackTableBlock::new(all)
        .with_block_id(id.into())
        .with_column_settings(vec![SlackTableColumnSetting::new().with_is_wrapped(true)])
        .into()
}

/// The board or the detail of one CronJob.
pub fn view(view: &View) -> Rendered {
    match view {
        View::Page(page) => board_page(page),
        View::Detail(detail) => cronjob_detail(detail),
    }
}

fn board_page(page: &Page) -> Rendered {
    let title = page.title();
    let mut blocks = vec![section(format!(
        "*{}*",
        escape_cut(&title, SECTION_TEXT_MAX - 2)
    ))];
    blocks.push(table(
        HEADERS,
        page.rows
            .iter()
            .map(|r| board::cells(r, page.now))
            .collect(),
        "cronjobs_board",
    ));
    let mut text = title;
    if let Some(footer) = page.footer() {
        blocks.push(context(escape_cut(&footer, 2000)));
        text.push_str(&format!(" — page {} of {}", page.page, page.pages));
    }
    Rendered {
        text: escape_cut(&text, 500),
        blocks,
    }
}

fn cronjob_detail(d: &Detail) -> Rendered {
    let key = d.row.key();
    let mut blocks = vec![section(format!("*CronJob `{}`*", escape_cut(&key, 300)))];
    let fields: Vec<SlackBlockText> = d
        .facts()
        .into_iter()
        .take(10)
        .map(|(label, value)| md(format!("*{label}*\n{}", escape_cut(&value, FIELD_MAX - 40))))
        .collect();
    blocks.push(SlackSectionBlock::new().with_fields(fields).into());
    let warnings = d.warnings();
    if !warnings.is_empty() {
        blocks.push(section(escape_cut(&warnings.join("\n"), SECTION_TEXT_MAX)));
    }
    if d.runs.is_empty() {
        blocks.push(context("No finished run of it is known yet.".into()));
    } else {
        blocks.push(section(format!(
            "*Last {} runs*, newest first",
            d.runs.len()
        )));
        blocks.push(table(
            RUN_HEADERS,
            d.runs.iter().map(|r| board::run_cells(r, d.now)).collect(),
            "cronjob_runs",
        ));
    }
    Rendered {
        text: escape_cut(&format!("CronJob {key}"), 500),
        blocks,
    }
}
