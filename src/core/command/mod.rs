//! Slash commands, parsed once into plain values (handlers never see raw text).
//!
//! Text is tokenised like a shell (`shell-words`: quotes, escapes), then the
//! tokens are walked by hand: generic flag parsers reject `--arg --date=…`,
//! and `--arg` must always take the next token as its value.

use std::fmt;

use super::board::{Filter, Query};
use super::overrides::{ArgsMode, Overrides, parse_env};
use super::snooze::{self, Length};

mod stop;
pub use stop::StopCommand;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Rerun,
    Hold,
    Resume,
    CronJobs,
    Snooze,
    Unsnooze,
    Stop,
}

impl CommandKind {
    pub fn from_slash(command: &str) -> Option<Self> {
        match command.trim().trim_start_matches('/') {
            "rerun" => Some(CommandKind::Rerun),
            "hold" => Some(CommandKind::Hold),
            "resume" => Some(CommandKind::Resume),
            "cronjobs" => Some(CommandKind::CronJobs),
            "snooze" => Some(CommandKind::Snooze),
            "unsnooze" => Some(CommandKind::Unsnooze),
            "stop" => Some(CommandKind::Stop),
            _ => None,
        }
    }
}

/// One line of usage per command. Exhaustive: a new command does not compile without its help.
pub fn usage(kind: CommandKind) -> &'static str {
    match kind {
        CommandKind::Rerun => {
            "/rerun <cronjob> [-n <namespace>] [--arg <arg>]… [--args \"<args>\"] [--replace-args] [--env KEY=VALUE]… [--container <name>] --reason \"<why>\" [--ticket <ref>] · /rerun failed [--since <duration, default 24h>] [-n <namespace>] --reason \"<why>\" [--ticket <ref>] · /rerun history [<cronjob>] · /rerun help"
        }
        CommandKind::Hold => {
            "/hold all|<cronjob>|ns:<namespace> [-n <namespace>] [--reason \"<why>\"] [--until <duration, e.g. 2h>] · /hold status"
        }
        CommandKind::Resume => "/resume all|<cronjob>|ns:<namespace>|<hold-id> [-n <namespace>]",
        CommandKind::CronJobs => {
            "/cronjobs [<namespace>] [--failing|--missed|--held] [--page <n>] · /cronjobs <cronjob> [-n <namespace>]"
        }
        CommandKind::Snooze => {
            "/snooze <cronjob> [-n <namespace>] <duration, e.g. 1h, 4h, 24h>|until-recovered [--reason \"<why>\"] · /snooze list"
        }
        CommandKind::Unsnooze => "/unsnooze <cronjob> [-n <namespace>]",
        CommandKind::Stop => {
            "/stop <job> [-n <namespace>] --reason \"<why>\" [--ticket <ref>] (a running Job of a CronJob; a second person approves)"
        }
    }
}

/// The help text listing every command.
pub fn help() -> String {
    [
        CommandKind::Rerun,
        CommandKind::Hold,
        CommandKind::Resume,
        CommandKind::CronJobs,
        CommandKind::Snooze,
        CommandKind::Unsnooze,
        CommandKind::Stop,
    ]
    .into_iter()
    .map(|k| format!("• `{}`", usage(k)))
    .collect::<Vec<_>>()
    .join("\n")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Rerun(RerunCommand),
    /// `/rerun failed …`: every CronJob with an open incident, one approval.
    RerunFailed(RerunFailedCommand),
    RerunHistory {
        cronjob: Option<String>,
    },
    Help(CommandKind),
    Hold(HoldCommand),
    HoldStatus,
    Resume(ResumeCommand),
    /// `/cronjobs [<namespace>] [--failing|--missed|--held] [--page N]`. A
    /// lone word may also be a CronJob's name: the app tells which
    /// (`/cronjobs <name>` shows it in detail).
    CronJobs(Query),
    /// `/cronjobs <cronjob> -n <namespace>`: one CronJob in detail.
    CronJob {
        name: String,
        namespace: Option<String>,
    },
    Snooze(SnoozeCommand),
    SnoozeList,
    Unsnooze {
        cronjob: String,
        namespace: Option<String>,
    },
    /// `/stop <job> …`: a four-eyes request to stop a running Job.
    Stop(StopCommand),
}

/// `/snooze <cronjob> [-n ns] <duration>|until-recovered [--reason …]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnoozeCommand {
    pub cronjob: String,
    pub namespace: Option<String>,
    pub length: Length,
    pub reason: Option<String>,
}

/// `/rerun failed [--since 1h] [-n ns] [--reason …] [--ticket T]`; also
/// what the storm digest's *Rerun all failed…* asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerunFailedCommand {
    /// Failures this recent (default [`RERUN_FAILED_SINCE`]).
    pub since: std::time::Duration,
    pub namespace: Option<String>,
    /// Required; checked by the app (like `/rerun`'s) so the answer can say how.
    pub reason: Option<String>,
    pub ticket: Option<String>,
}

/// `/rerun failed` without `--since`: failures of the last day.
pub const RERUN_FAILED_SINCE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RerunCommand {
    pub cronjob: String,
    pub namespace: Option<String>,
    pub overrides: Overrides,
    pub reason: Option<String>,
    pub ticket: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Namespace(String),
    CronJob {
        name: String,
        namespace: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldCommand {
    pub target: Target,
    pub reason: Option<String>,
    /// `--until 2h`: resume automatically after this long.
    pub until: Option<std::time::Duration>,
}

/// The longest `--until`: a week; longer maintenance is resumed by hand.
pub const UNTIL_MAX: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeTarget {
    Target(Target),
    HoldId(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeCommand {
    pub target: ResumeTarget,
}

/// What is wrong with the command, in words the user can act on, plus usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub kind: Option<CommandKind>,
    pub message: String,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Some(kind) => write!(f, "{}\nUsage: `{}`", self.message, usage(kind)),
            None => write!(f, "{}\n{}", self.message, help()),
        }
    }
}

impl std::error::Error for CommandError {}

/// DNS-1123 subdomain: CronJob names.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// DNS-1123 label: namespaces.
pub fn valid_namespace(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && valid_name(s)
}

fn is_hold_id(s: &str) -> bool {
    s.strip_prefix("hold-").is_some_and(|id| {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    })
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Walks tokens; knows which command it parses for its error messages.
struct Walker {
    kind: CommandKind,
    tokens: std::vec::IntoIter<String>,
}

impl Walker {
    fn err(&self, message: impl Into<String>) -> CommandError {
        CommandError {
            kind: Some(self.kind),
            message: message.into(),
        }
    }

    /// The value of `flag`: the `=`-part if given, else the next token. Only
    /// `--arg`/`--env` (`verbatim`) take a next token that looks like a flag.
    fn value(
        &mut self,
        flag: &str,
        inline: Option<String>,
        verbatim: bool,
    ) -> Result<String, CommandError> {
        if let Some(v) = inline {
            return Ok(v);
        }
        match self.tokens.next() {
            Some(v) if verbatim || !v.starts_with("--") => Ok(v),
            Some(v) => Err(self.err(format!("`{flag}` needs a value, but `{v}` follows it"))),
            None => Err(self.err(format!("`{flag}` needs a value"))),
        }
    }

    fn unknown_flag(&self, flag: &str, known: &[&str]) -> CommandError {
        let closest = known
            .iter()
            .map(|k| (edit_distance(flag, k), k))
            .min()
            .filter(|(d, _)| *d <= 3)
            .map(|(_, k)| format!(" Did you mean `{k}`?"))
            .unwrap_or_default();
        self.err(format!("Unknown option `{flag}`.{closest}"))
    }
}

fn set_once(
    slot: &mut Option<String>,
    flag: &str,
    value: String,
    w: &Walker,
) -> Result<(), CommandError> {
    if slot.is_some() {
        return Err(w.err(format!("`{flag}` is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

/// Words as `` `a`, `b` `` for an error message.
fn quoted(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `--reason`: a value, not blank, given once; `blank` says what to write.
fn reason_value(
    w: &mut Walker,
    flag: &str,
    inline: Option<String>,
    slot: &mut Option<String>,
    blank: &str,
) -> Result<(), CommandError> {
    let v = w.value(flag, inline, false)?;
    if v.trim().is_empty() {
        return Err(w.err(format!("`--reason` is empty: {blank}")));
    }
    set_once(slot, flag, v, w)
}

fn split_flag(token: &str) -> (&str, Option<String>) {
    match token.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
        _ => (token, None),
    }
}

fn namespace_value(
    w: &mut Walker,
    flag: &str,
    inline: Option<String>,
    slot: &mut Option<String>,
) -> Result<(), CommandError> {
    let ns = w.value(flag, inline, false)?;
    if !valid_namespace(&ns) {
        return Err(w.err(format!("`{ns}` is not a valid namespace name")));
    }
    set_once(slot, "-n", ns, w)
}

/// Parses `/command text`.
pub fn parse(command: &str, text: &str) -> Result<Command, CommandError> {
    let Some(kind) = CommandKind::from_slash(command) else {
        return Err(CommandError {
            kind: None,
            message: format!("`{command}` is not a rerun-bot command."),
        });
    };
    let tokens = shell_words::split(text).map_err(|_| CommandError {
        kind: Some(kind),
        message: "A quote is not closed. Put values with spaces in matching quotes: --reason \"disk full\"".into(),
    })?;
    if tokens.is_empty() || matches!(tokens[0].as_str(), "help" | "--help" | "-h") {
        return Ok(match kind {
            CommandKind::CronJobs if tokens.is_empty() => Command::CronJobs(Query {
                page: 1,
                ..Query::default()
            }),
            _ => Command::Help(kind),
        });
    }
    let mut w = Walker {
        kind,
        tokens: tokens.into_iter(),
    };
    match kind {
        CommandKind::Rerun => parse_rerun(&mut w),
        CommandKind::Hold => parse_hold(&mut w),
        CommandKind::Resume => parse_resume(&mut w),
        CommandKind::CronJobs => parse_cronjobs(&mut w),
        CommandKind::Snooze => parse_snooze(&mut w),
        CommandKind::Unsnooze => parse_unsnooze(&mut w),
        CommandKind::Stop => stop::parse(&mut w),
    }
}

const RERUN_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--arg",
    "--args",
    "--replace-args",
    "--env",
    "--container",
    "--reason",
    "--ticket",
];

fn parse_rerun(w: &mut Walker) -> Result<Command, CommandError> {
    if w.tokens.as_slice().first().map(String::as_str) == Some("failed") {
        w.tokens.next();
        return parse_rerun_failed(w);
    }
    let mut cmd = RerunCommand::default();
    let mut positional: Vec<String> = Vec::new();
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        match flag {
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut cmd.namespace)?,
            "--arg" => {
                let v = w.value(flag, inline, true)?;
                cmd.overrides.args.push(v);
            }
            "--args" => {
                let v = w.value(flag, inline, true)?;
                let args =
                    shell_words::split(&v).map_err(|_| w.err("`--args` has an unclosed quote"))?;
                cmd.overrides.args.extend(args);
            }
            "--replace-args" => {
                if inline.is_some() {
                    return Err(w.err("`--replace-args` takes no value"));
                }
                cmd.overrides.args_mode = ArgsMode::Replace;
            }
            "--env" => {
                let v = w.value(flag, inline, true)?;
                let pair = parse_env(&v).map_err(|why| w.err(format!("`--env`: {why}")))?;
                cmd.overrides.env.push(pair);
            }
            "--container" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut cmd.overrides.container, flag, v, w)?;
            }
            "--reason" => reason_value(
                w,
                flag,
                inline,
                &mut cmd.reason,
                "say why the rerun is needed",
            )?,
            "--ticket" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut cmd.ticket, flag, v, w)?;
            }
            "-h" | "--help" => return Ok(Command::Help(CommandKind::Rerun)),
            f if f.starts_with('-') && f.len() > 1 => return Err(w.unknown_flag(f, RERUN_FLAGS)),
            _ => positional.push(token),
        }
    }
    if positional.first().map(String::as_str) == Some("history") {
        return match positional.len() {
            1 => Ok(Command::RerunHistory { cronjob: None }),
            2 if valid_name(&positional[1]) => Ok(Command::RerunHistory {
                cronjob: positional.pop(),
            }),
            2 => Err(w.err(format!("`{}` is not a valid CronJob name", positional[1]))),
            _ => Err(w.err("`/rerun history` takes at most one CronJob name")),
        };
    }
    match positional.len() {
        0 => Err(w.err("Which CronJob? Name it first: `/rerun billing-sync --reason \"…\"`")),
        1 => {
            let name = positional.pop().unwrap_or_default();
            if !valid_name(&name) {
                return Err(w.err(format!(
                    "`{name}` is not a valid CronJob name (lowercase letters, digits, `-` and `.`)"
                )));
            }
            cmd.cronjob = name;
            Ok(Command::Rerun(cmd))
        }
        _ => Err(w.err(format!(
            "One CronJob at a time; got {}. Arguments for the job go after `--arg`.",
            quoted(&positional)
        ))),
    }
}

fn parse_rerun_failed(w: &mut Walker) -> Result<Command, CommandError> {
    let mut namespace = None;
    let mut since: Option<String> = None;
    let mut reason = None;
    let mut ticket = None;
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        match flag {
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut namespace)?,
            "--since" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut since, flag, v, w)?;
            }
            "--reason" => reason_value(
                w,
                flag,
                inline,
                &mut reason,
                "say why the reruns are needed",
            )?,
            "--ticket" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut ticket, flag, v, w)?;
            }
            "-h" | "--help" => return Ok(Command::Help(CommandKind::Rerun)),
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(
                    w.unknown_flag(f, &["-n", "--namespace", "--since", "--reason", "--ticket"])
                );
            }
            other => {
                return Err(w.err(format!(
                    "`/rerun failed` reruns every failed CronJob; `{other}` is not an option of it. One CronJob: `/rerun {other} --reason \"…\"`; per-CronJob changes are for single reruns."
                )));
            }
        }
    }
    let since = match since {
        None => RERUN_FAILED_SINCE,
        Some(text) => match humantime::parse_duration(&text) {
            Ok(d) if d.as_secs() >= 60 && d <= UNTIL_MAX => d,
            Ok(_) => {
                return Err(w.err(format!(
                    "`--since {text}`: give at least 1m and at most a week"
                )));
            }
            Err(_) => {
                return Err(w.err(format!(
                    "`--since {text}` is not a duration: write it like `30m`, `1h` or `2d`"
                )));
            }
        },
    };
    Ok(Command::RerunFailed(RerunFailedCommand {
        since,
        namespace,
        reason,
        ticket,
    }))
}

/// `all`, `ns:<namespace>` or a CronJob name (with `-n`).
fn target_of(w: &Walker, word: &str, namespace: Option<String>) -> Result<Target, CommandError> {
    if word == "all" {
        if namespace.is_some() {
            return Err(w.err("`all` means every namespace; use `ns:<namespace>` for one"));
        }
        return Ok(Target::All);
    }
    if let Some(ns) = word.strip_prefix("ns:") {
        if !valid_namespace(ns) {
            return Err(w.err(format!("`{ns}` is not a valid namespace name")));
        }
        return Ok(Target::Namespace(ns.to_string()));
    }
    if !valid_name(word) {
        return Err(w.err(format!(
            "`{word}` is not `all`, `ns:<namespace>` or a CronJob name"
        )));
    }
    Ok(Target::CronJob {
        name: word.to_string(),
        namespace,
    })
}

fn parse_hold(w: &mut Walker) -> Result<Command, CommandError> {
    let mut namespace = None;
    let mut reason = None;
    let mut until: Option<String> = None;
    let mut positional: Vec<String> = Vec::new();
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        match flag {
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut namespace)?,
            "--reason" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut reason, flag, v, w)?;
            }
            "--until" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut until, flag, v, w)?;
            }
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(w.unknown_flag(f, &["-n", "--namespace", "--reason", "--until"]));
            }
            _ => positional.push(token),
        }
    }
    let until = match until {
        None => None,
        Some(text) => match humantime::parse_duration(&text) {
            Ok(d) if d.as_secs() >= 1 && d <= UNTIL_MAX => Some(d),
            Ok(_) => {
                return Err(w.err(format!(
                    "`--until {text}`: give at least 1s and at most a week"
                )));
            }
            Err(_) => {
                return Err(w.err(format!(
                    "`--until {text}` is not a duration: write it like `90m`, `2h` or `1d`"
                )));
            }
        },
    };
    match positional.as_slice() {
        [word] if word == "status" => Ok(Command::HoldStatus),
        [word] => Ok(Command::Hold(HoldCommand {
            target: target_of(w, word, namespace)?,
            reason,
            until,
        })),
        [] => Err(w.err("What should be held? `all`, `ns:<namespace>` or a CronJob name")),
        _ => Err(w.err("One target at a time: `all`, `ns:<namespace>` or a CronJob name")),
    }
}

fn parse_resume(w: &mut Walker) -> Result<Command, CommandError> {
    let mut namespace = None;
    let mut positional: Vec<String> = Vec::new();
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        match flag {
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut namespace)?,
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(w.unknown_flag(f, &["-n", "--namespace"]));
            }
            _ => positional.push(token),
        }
    }
    match positional.as_slice() {
        // A hold id wins over a CronJob that happens to be called `hold-…`.
        [word] if is_hold_id(word) && namespace.is_none() => Ok(Command::Resume(ResumeCommand {
            target: ResumeTarget::HoldId(word.clone()),
        })),
        [word] => Ok(Command::Resume(ResumeCommand {
            target: ResumeTarget::Target(target_of(w, word, namespace)?),
        })),
        [] => Err(
            w.err("What should be resumed? `all`, `ns:<namespace>`, a CronJob name or a hold id")
        ),
        _ => Err(w.err("One target at a time")),
    }
}

fn parse_cronjobs(w: &mut Walker) -> Result<Command, CommandError> {
    const FLAGS: &[&str] = &[
        "--failing",
        "--failed",
        "--missed",
        "--held",
        "--page",
        "-n",
        "--namespace",
    ];
    let mut word: Option<String> = None;
    let mut namespace = None;
    let mut filter: Option<Filter> = None;
    let mut page: Option<String> = None;
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        let chosen = match flag {
            "--failing" | "--failed" => Some(Filter::Failing),
            "--missed" => Some(Filter::Missed),
            "--held" => Some(Filter::Held),
            _ => None,
        };
        if let Some(f) = chosen {
            if filter.is_some_and(|g| g != f) {
                return Err(w.err("One of `--failing`, `--missed` or `--held` at a time"));
            }
            filter = Some(f);
            continue;
        }
        match flag {
            "--page" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut page, flag, v, w)?;
            }
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut namespace)?,
            f if f.starts_with('-') && f.len() > 1 => return Err(w.unknown_flag(f, FLAGS)),
            name if word.is_none() && valid_name(name) => word = Some(name.to_string()),
            other if word.is_none() => {
                return Err(w.err(format!("`{other}` is not a namespace or CronJob name")));
            }
            _ => return Err(w.err("One namespace or CronJob at a time")),
        }
    }
    let page = match page {
        None => 1,
        Some(p) => match p.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(w.err(format!("`--page {p}`: a page is a number from 1"))),
        },
    };
    match (word, namespace) {
        (Some(name), Some(namespace)) => {
            if filter.is_some() || page != 1 {
                return Err(w.err(
                    "`/cronjobs <cronjob> -n <namespace>` shows one CronJob; filters and pages are for the board",
                ));
            }
            Ok(Command::CronJob {
                name,
                namespace: Some(namespace),
            })
        }
        (Some(word), None) if !valid_namespace(&word) => Ok(Command::CronJob {
            name: word,
            namespace: None,
        }),
        (word, namespace) => Ok(Command::CronJobs(Query {
            namespace: word.or(namespace),
            filter: filter.unwrap_or_default(),
            page,
        })),
    }
}

fn cronjob_name(w: &Walker, name: &str) -> Result<String, CommandError> {
    if valid_name(name) {
        Ok(name.to_string())
    } else {
        Err(w.err(format!(
            "`{name}` is not a valid CronJob name (lowercase letters, digits, `-` and `.`)"
        )))
    }
}

fn parse_snooze(w: &mut Walker) -> Result<Command, CommandError> {
    let mut namespace = None;
    let mut reason = None;
    let mut positional: Vec<String> = Vec::new();
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        match flag {
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut namespace)?,
            "--reason" => reason_value(w, flag, inline, &mut reason, "say why, or leave it out")?,
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(w.unknown_flag(f, &["-n", "--namespace", "--reason"]));
            }
            _ => positional.push(token),
        }
    }
    match positional.as_slice() {
        [word] if word == "list" && namespace.is_none() && reason.is_none() => {
            Ok(Command::SnoozeList)
        }
        [name, length] => Ok(Command::Snooze(SnoozeCommand {
            cronjob: cronjob_name(w, name)?,
            namespace,
            length: snooze::parse_length(length).map_err(|e| w.err(e))?,
            reason,
        })),
        [name] => {
            cronjob_name(w, name)?;
            Err(w.err(format!(
                "For how long? `/snooze {name} 1h` (or `4h`, `24h`, `until-recovered`)"
            )))
        }
        [] => Err(w.err("Which CronJob? `/snooze billing-sync 4h`, or `/snooze list`")),
        _ => Err(w.err(format!(
            "One CronJob and one duration; got {}. Put a reason in quotes after `--reason`.",
            quoted(&positional)
        ))),
    }
}

fn parse_unsnooze(w: &mut Walker) -> Result<Command, CommandError> {
    let mut namespace = None;
    let mut positional: Vec<String> = Vec::new();
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        match flag {
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut namespace)?,
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(w.unknown_flag(f, &["-n", "--namespace"]));
            }
            _ => positional.push(token),
        }
    }
    match positional.as_slice() {
        [name] => Ok(Command::Unsnooze {
            cronjob: cronjob_name(w, name)?,
            namespace,
        }),
        [] => Err(w.err("Which CronJob? `/unsnooze billing-sync`")),
        _ => Err(w.err("One CronJob at a time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rerun(text: &str) -> RerunCommand {
        match parse("/rerun", text) {
            Ok(Command::Rerun(r)) => r,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn error(command: &str, text: &str) -> String {
        parse(command, text).expect_err(text).to_string()
    }

    #[test]
    fn plain_rerun() {
        let r = rerun("billing-sync --reason \"db was down\"");
        assert_eq!(r.cronjob, "billing-sync");
        assert_eq!(r.reason.as_deref(), Some("db was down"));
        assert!(r.overrides.is_empty());
        assert_eq!(r.namespace, None);
    }

    #[test]
    fn arg_takes_next_token_even_if_it_looks_like_a_flag() {
        let r = rerun("billing-sync --arg --date=2024-01-01 --arg -n --arg=--verbose");
        assert_eq!(r.overrides.args, ["--date=2024-01-01", "-n", "--verbose"]);
        assert_eq!(r.namespace, None);
    }

    #[test]
    fn args_is_shell_split() {
        let r = rerun("x --args \"--from 2024-01-01 'two words'\" --arg last");
        assert_eq!(
            r.overrides.args,
            ["--from", "2024-01-01", "two words", "last"]
        );
    }

    #[test]
    fn equals_form_for_every_valued_flag() {
        let r =
            rerun("x --namespace=billing --env=A=1 --container=main --reason=why --ticket=INC-1");
        assert_eq!(r.namespace.as_deref(), Some("billing"));
        assert_eq!(r.overrides.env, [("A".to_string(), "1".to_string())]);
        assert_eq!(r.overrides.container.as_deref(), Some("main"));
        assert_eq!(
            (r.reason.as_deref(), r.ticket.as_deref()),
            (Some("why"), Some("INC-1"))
        );
    }

    #[test]
    fn replace_args_and_env() {
        let r = rerun(
            "x -n prod --replace-args --arg a --env DATE=2024-01-01 --env Q=a=b --env EMPTY=",
        );
        assert_eq!(r.overrides.args_mode, ArgsMode::Replace);
        assert_eq!(r.overrides.env.len(), 3);
        assert_eq!(r.overrides.env[1], ("Q".to_string(), "a=b".to_string()));
        assert_eq!(r.namespace.as_deref(), Some("prod"));
    }

    #[test]
    fn rerun_failed() {
        let failed = |text: &str| match parse("/rerun", text) {
            Ok(Command::RerunFailed(f)) => f,
            other => panic!("{text}: {other:?}"),
        };
        let f = failed("failed");
        assert_eq!(f.since, RERUN_FAILED_SINCE);
        assert_eq!((f.namespace, f.reason, f.ticket), (None, None, None));
        let f = failed("failed --since 1h -n billing --reason \"db was down\" --ticket INC-1");
        assert_eq!(f.since, std::time::Duration::from_secs(3600));
        assert_eq!(f.namespace.as_deref(), Some("billing"));
        assert_eq!(f.reason.as_deref(), Some("db was down"));
        assert_eq!(f.ticket.as_deref(), Some("INC-1"));
        assert_eq!(failed("failed --since=90m").since.as_secs(), 5400);
        assert_eq!(
            parse("/rerun", "failed --help"),
            Ok(Command::Help(CommandKind::Rerun))
        );
        let cases: &[(&str, &str)] = &[
            ("failed --since soon", "is not a duration"),
            ("failed --since 10s", "at least 1m"),
            ("failed --since 30d", "at most a week"),
            ("failed --since 1h --since 2h", "`--since` is given twice"),
            ("failed --sinse 1h", "Did you mean `--since`?"),
            ("failed --arg x", "Unknown option"),
            ("failed billing-sync", "is not an option of it"),
            ("failed -n Bad_NS", "not a valid namespace"),
            ("failed --reason \"  \"", "`--reason` is empty"),
        ];
        for (text, want) in cases {
            let e = error("/rerun", text);
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("Usage: `/rerun"), "{text}: {e}");
        }
        assert!(usage(CommandKind::Rerun).contains("/rerun failed [--since"));
    }

    #[test]
    fn missing_reason_is_not_a_parse_error() {
        assert_eq!(rerun("x").reason, None);
    }

    #[test]
    fn errors_say_what_to_fix_and_show_usage() {
        let cases: &[(&str, &str)] = &[
            ("x --reason \"unclosed", "quote is not closed"),
            ("x --reasn why", "Did you mean `--reason`?"),
            ("x --bogus-flag-entirely", "Unknown option"),
            ("x -n a -n b", "`-n` is given twice"),
            ("x --reason a --reason b", "`--reason` is given twice"),
            ("x --container", "`--container` needs a value"),
            (
                "x --reason --ticket T",
                "needs a value, but `--ticket` follows",
            ),
            ("x --env NOEQUALS", "is not KEY=VALUE"),
            ("x --env 1A=b", "not a valid environment variable name"),
            ("Billing_Sync", "not a valid CronJob name"),
            ("x y", "One CronJob at a time"),
            ("--reason why", "Which CronJob?"),
            ("x -n Bad_NS", "not a valid namespace"),
            ("x --reason \"  \"", "`--reason` is empty"),
            ("x --replace-args=yes", "takes no value"),
        ];
        for (text, want) in cases {
            let e = error("/rerun", text);
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("Usage: `/rerun"), "{text}: {e}");
        }
    }

    #[test]
    fn help_and_history() {
        for text in ["", "help", "--help", "-h"] {
            assert_eq!(
                parse("/rerun", text),
                Ok(Command::Help(CommandKind::Rerun)),
                "{text:?}"
            );
        }
        assert_eq!(
            parse("/rerun", "history"),
            Ok(Command::RerunHistory { cronjob: None })
        );
        assert_eq!(
            parse("/rerun", "history billing-sync"),
            Ok(Command::RerunHistory {
                cronjob: Some("billing-sync".into())
            })
        );
        assert!(help().contains("/hold") && help().contains("/cronjobs"));
    }

    #[test]
    fn hold_targets() {
        let hold = |t: &str| parse("/hold", t);
        assert_eq!(
            hold("all --reason \"db upgrade\""),
            Ok(Command::Hold(HoldCommand {
                target: Target::All,
                reason: Some("db upgrade".into()),
                until: None,
            }))
        );
        assert_eq!(
            hold("ns:billing"),
            Ok(Command::Hold(HoldCommand {
                target: Target::Namespace("billing".into()),
                reason: None,
                until: None,
            }))
        );
        assert_eq!(
            hold("billing-sync -n prod"),
            Ok(Command::Hold(HoldCommand {
                target: Target::CronJob {
                    name: "billing-sync".into(),
                    namespace: Some("prod".into())
                },
                reason: None,
                until: None,
            }))
        );
        assert_eq!(hold("status"), Ok(Command::HoldStatus));
        match hold("all --until 90m") {
            Ok(Command::Hold(h)) => assert_eq!(h.until, Some(std::time::Duration::from_secs(5400))),
            other => panic!("{other:?}"),
        }
        assert!(error("/hold", "all --until soon").contains("not a duration"));
        assert!(error("/hold", "all --until 30d").contains("at most a week"));
        assert!(error("/hold", "all --until").contains("needs a value"));
        assert!(error("/hold", "all -n prod").contains("ns:<namespace>"));
        assert!(error("/hold", "ns:Bad_NS").contains("not a valid namespace"));
        assert!(error("/hold", "a b").contains("One target"));
        assert!(error("/hold", "--reason x").contains("What should be held?"));
    }

    #[test]
    fn resume_targets() {
        assert_eq!(
            parse("/resume", "hold-3k9x2a"),
            Ok(Command::Resume(ResumeCommand {
                target: ResumeTarget::HoldId("hold-3k9x2a".into())
            }))
        );
        assert_eq!(
            parse("/resume", "all"),
            Ok(Command::Resume(ResumeCommand {
                target: ResumeTarget::Target(Target::All)
            }))
        );
        assert_eq!(
            parse("/resume", "billing-sync"),
            Ok(Command::Resume(ResumeCommand {
                target: ResumeTarget::Target(Target::CronJob {
                    name: "billing-sync".into(),
                    namespace: None
                })
            }))
        );
        assert_eq!(parse("/resume", ""), Ok(Command::Help(CommandKind::Resume)));
        assert!(error("/resume", "--reason x").contains("Unknown option `--reason`"));
    }

    #[test]
    fn cronjobs_listing() {
        let board = |namespace: Option<&str>, filter, page| {
            Ok(Command::CronJobs(Query {
                namespace: namespace.map(str::to_string),
                filter,
                page,
            }))
        };
        let cases: &[(&str, Result<Command, CommandError>)] = &[
            ("", board(None, Filter::All, 1)),
            (
                "billing --failed",
                board(Some("billing"), Filter::Failing, 1),
            ),
            (
                "--failing billing",
                board(Some("billing"), Filter::Failing, 1),
            ),
            ("--missed", board(None, Filter::Missed, 1)),
            ("--held", board(None, Filter::Held, 1)),
            ("--page 3", board(None, Filter::All, 3)),
            (
                "--page=2 -n ops --held",
                board(Some("ops"), Filter::Held, 2),
            ),
            (
                "billing-sync -n billing",
                Ok(Command::CronJob {
                    name: "billing-sync".into(),
                    namespace: Some("billing".into()),
                }),
            ),
            (
                "report.daily",
                Ok(Command::CronJob {
                    name: "report.daily".into(),
                    namespace: None,
                }),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&parse("/cronjobs", text), want, "{text}");
        }
        for (text, want) in [
            ("a b", "One namespace or CronJob at a time"),
            ("--fialed", "Did you mean `--failed`?"),
            ("--page 0", "a page is a number from 1"),
            ("--page x", "a page is a number from 1"),
            ("--page", "`--page` needs a value"),
            ("--failing --held", "at a time"),
            ("x -n ops --failing", "shows one CronJob"),
            ("Bad_Name", "not a namespace or CronJob name"),
        ] {
            assert!(
                error("/cronjobs", text).contains(want),
                "{text}: {}",
                error("/cronjobs", text)
            );
        }
    }

    #[test]
    fn snooze_commands() {
        let snooze = |t: &str| parse("/snooze", t);
        assert_eq!(
            snooze("billing-sync 4h --reason \"db migration\""),
            Ok(Command::Snooze(SnoozeCommand {
                cronjob: "billing-sync".into(),
                namespace: None,
                length: Length::For(std::time::Duration::from_secs(4 * 3600)),
                reason: Some("db migration".into()),
            }))
        );
        assert_eq!(
            snooze("-n prod billing-sync until-recovered"),
            Ok(Command::Snooze(SnoozeCommand {
                cronjob: "billing-sync".into(),
                namespace: Some("prod".into()),
                length: Length::UntilRecovered,
                reason: None,
            }))
        );
        assert_eq!(snooze("list"), Ok(Command::SnoozeList));
        assert_eq!(snooze(""), Ok(Command::Help(CommandKind::Snooze)));
        // A CronJob called `list` is snoozed with a duration.
        assert!(matches!(snooze("list 1h"), Ok(Command::Snooze(s)) if s.cronjob == "list"));
        for (text, want) in [
            ("billing-sync", "For how long?"),
            ("billing-sync soon", "not a duration"),
            ("billing-sync 8d", "at most a week"),
            ("billing-sync 0s", "at least 1s"),
            ("Billing_Sync 1h", "not a valid CronJob name"),
            ("a 1h b", "One CronJob and one duration"),
            ("--reason x", "Which CronJob?"),
            ("x 1h --reasn y", "Did you mean `--reason`?"),
            ("x 1h --reason \" \"", "`--reason` is empty"),
            ("x 1h -n Bad_NS", "not a valid namespace"),
        ] {
            let e = error("/snooze", text);
            assert!(e.contains(want), "{text}: {e}");
            assert!(e.contains("Usage: `/snooze"), "{text}: {e}");
        }
        assert_eq!(
            parse("/unsnooze", "billing-sync -n prod"),
            Ok(Command::Unsnooze {
                cronjob: "billing-sync".into(),
                namespace: Some("prod".into())
            })
        );
        assert_eq!(
            parse("/unsnooze", "help"),
            Ok(Command::Help(CommandKind::Unsnooze))
        );
        assert!(error("/unsnooze", "a b").contains("One CronJob"));
        assert!(error("/unsnooze", "--until 1h").contains("Unknown option"));
        assert!(help().contains("/snooze") && help().contains("/unsnooze"));
    }

    #[test]
    fn unknown_command() {
        let e = error("/deploy", "x");
        assert!(
            e.contains("not a rerun-bot command") && e.contains("/rerun"),
            "{e}"
        );
    }

    #[test]
    fn long_and_unicode_input() {
        let long = format!("x --reason \"{}\"", "é".repeat(20_000));
        assert_eq!(rerun(&long).reason.unwrap().chars().count(), 20_000);
        assert!(error("/rerun", "billing-sync ünïcode").contains("One CronJob at a time"));
    }

    /// A bounded random walk over arbitrary text and the flag vocabulary: the
    /// parser answers Ok or Err, and never panics.
    #[test]
    fn parse_never_panics() {
        let extras = [
            "history",
            "help",
            "all",
            "status",
            "ns:",
            "ns:x",
            "hold-",
            "hold-1a",
            "=",
            "==",
            "\"",
            "'",
            "\\",
            "--arg=",
            "--env=",
            "K=V",
            "é",
            "",
            " ",
            "-",
            "--",
            "billing-sync",
            "x.y",
            "\n",
            "\t",
            "--failed",
            "`",
            "<!here>",
        ];
        let vocab: Vec<&str> = RERUN_FLAGS.iter().copied().chain(extras).collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let n = (next() % 8) as usize;
            let mut text = String::new();
            for _ in 0..n {
                let r = next();
                if r % 5 == 0 {
                    // raw random characters, including control and multi-byte ones
                    for _ in 0..(r % 6) {
                        text.push(char::from_u32((next() % 0x3000) as u32).unwrap_or('?'));
                    }
                } else {
                    text.push_str(vocab[(r as usize / 5) % vocab.len()]);
                }
                if next() % 3 != 0 {
                    text.push(' ');
                }
            }
            for command in [
                "/rerun",
                "/hold",
                "/resume",
                "/cronjobs",
                "/snooze",
                "/unsnooze",
                "/other",
            ] {
                let _ = parse(command, &text).map_err(|e| e.to_string());
            }
        }
    }
}
