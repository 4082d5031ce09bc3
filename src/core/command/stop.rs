//! `/stop <job> [-n <namespace>] --reason "…" [--ticket T]`: ask to stop a
//! running Job of a CronJob (the long-run alert's *Stop this run…* as a command).

use super::{
    Command, CommandError, Walker, namespace_value, quoted, reason_value, set_once, split_flag,
    valid_name,
};

/// `/stop <job> …`. The reason is checked by the app (a missing one opens
/// the form where there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopCommand {
    pub job: String,
    pub namespace: Option<String>,
    pub reason: Option<String>,
    pub ticket: Option<String>,
}

const FLAGS: &[&str] = &["-n", "--namespace", "--reason", "--ticket"];

pub(super) fn parse(w: &mut Walker) -> Result<Command, CommandError> {
    let (mut namespace, mut reason, mut ticket) = (None, None, None);
    let mut positional: Vec<String> = Vec::new();
    while let Some(token) = w.tokens.next() {
        let (flag, inline) = split_flag(&token);
        match flag {
            "-n" | "--namespace" => namespace_value(w, flag, inline, &mut namespace)?,
            "--reason" => {
                reason_value(w, flag, inline, &mut reason, "say why the run should stop")?
            }
            "--ticket" => {
                let v = w.value(flag, inline, false)?;
                set_once(&mut ticket, flag, v, w)?;
            }
            f if f.starts_with('-') && f.len() > 1 => return Err(w.unknown_flag(f, FLAGS)),
            _ => positional.push(token),
        }
    }
    match positional.as_slice() {
        [job] if valid_name(job) => Ok(Command::Stop(StopCommand {
            job: job.clone(),
            namespace,
            reason,
            ticket,
        })),
        [job] => Err(w.err(format!(
            "`{job}` is not a valid Job name (lowercase letters, digits, `-` and `.`)"
        ))),
        [] => Err(w.err(
            "Which Job? `/stop billing-sync-29412000 --reason \"stuck on a lock\"` (its long-run alert names it)",
        )),
        _ => Err(w.err(format!(
            "One Job at a time; got {}. Put a reason in quotes after `--reason`.",
            quoted(&positional)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Command, parse};
    use super::StopCommand;

    #[test]
    fn stop_commands() {
        assert_eq!(
            parse(
                "/stop",
                "etl-29412000 -n etl --reason \"stuck\" --ticket INC-9"
            ),
            Ok(Command::Stop(StopCommand {
                job: "etl-29412000".into(),
                namespace: Some("etl".into()),
                reason: Some("stuck".into()),
                ticket: Some("INC-9".into()),
            }))
        );
        assert_eq!(
            parse("/stop", "etl-29412000"),
            Ok(Command::Stop(StopCommand {
                job: "etl-29412000".into(),
                namespace: None,
                reason: None,
                ticket: None,
            })),
            "the reason is the app's to ask for"
        );
        for (text, says) in [
            ("--reason x", "Which Job?"),
            ("a b --reason x", "One Job at a time"),
            ("Etl_1 --reason x", "not a valid Job name"),
            ("etl-1 --reason \"\"", "`--reason` is empty"),
            ("etl-1 --reasn x", "Did you mean `--reason`?"),
            ("etl-1 -n Bad_NS", "namespace"),
            ("etl-1 --reason a --reason b", "--reason"),
        ] {
            let e = parse("/stop", text).expect_err(text);
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
        assert_eq!(
            parse("/stop", "help"),
            Ok(Command::Help(super::super::CommandKind::Stop))
        );
    }
}
