//! Changes a person asks for on a rerun: arguments and environment of one container.
//!
//! Applying them to a CronJob's template comes with the rerun flow; this module
//! holds the shape and the validation shared by `/rerun` and the modal.

use serde::{Deserialize, Serialize};

/// Append to the container's current args (default) or replace them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgsMode {
    #[default]
    Append,
    Replace,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Overrides {
    /// The container to change; `None`: the first one.
    pub container: Option<String>,
    pub args: Vec<String>,
    pub args_mode: ArgsMode,
    /// `KEY=VALUE` pairs, in the order given; a later one wins.
    pub env: Vec<(String, String)>,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        self.container.is_none()
            && self.args.is_empty()
            && self.args_mode == ArgsMode::Append
            && self.env.is_empty()
    }
}

/// Kubernetes' rule for environment variable names (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || "-._".contains(c))
        && chars.all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

/// Parses `KEY=VALUE` (the value may be empty or contain `=`).
pub fn parse_env(pair: &str) -> Result<(String, String), String> {
    let Some((key, value)) = pair.split_once('=') else {
        return Err(format!("`{pair}` is not KEY=VALUE"));
    };
    if !valid_env_name(key) {
        return Err(format!(
            "`{key}` is not a valid environment variable name (letters, digits, `-`, `.`, `_`; not starting with a digit)"
        ));
    }
    Ok((key.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs() {
        assert_eq!(
            parse_env("DATE=2024-01-01"),
            Ok(("DATE".into(), "2024-01-01".into()))
        );
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert_eq!(parse_env("Q=a=b"), Ok(("Q".into(), "a=b".into())));
        assert_eq!(parse_env("my.var_1=x"), Ok(("my.var_1".into(), "x".into())));
        assert!(parse_env("NOEQUALS").unwrap_err().contains("KEY=VALUE"));
        assert!(parse_env("1BAD=x").unwrap_err().contains("not a valid"));
        assert!(parse_env("=x").unwrap_err().contains("not a valid"));
        assert!(parse_env("SP ACE=x").unwrap_err().contains("not a valid"));
    }

    #[test]
    fn empty_overrides() {
        assert!(Overrides::default().is_empty());
        let o = Overrides {
            args_mode: ArgsMode::Replace,
            ..Overrides::default()
        };
        assert!(
            !o.is_empty(),
            "replace with no args clears the args: a change"
        );
    }
}
