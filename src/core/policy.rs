//! Who may request, approve and hold.
//!
//! Lists hold Slack ids: users (`U…`, `W…`) and user groups (`S…`). Group
//! membership is looked up by the app (and cached); this module only decides,
//! given the members it was handed.

use std::collections::HashMap;

/// One allow-list. Empty means "anyone" for requesters and approvers and
/// "nobody" for admins; the caller picks the meaning with [`Allow::anyone_if_empty`]
/// or [`Allow::nobody_if_empty`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allow {
    Anyone,
    Only(Vec<String>),
}

impl Allow {
    pub fn anyone_if_empty(ids: &[String]) -> Allow {
        let ids = clean(ids);
        if ids.is_empty() {
            Allow::Anyone
        } else {
            Allow::Only(ids)
        }
    }

    pub fn nobody_if_empty(ids: &[String]) -> Allow {
        Allow::Only(clean(ids))
    }

    /// The user-group ids in the list, whose members must be looked up.
    pub fn groups(&self) -> impl Iterator<Item = &str> {
        let ids: &[String] = match self {
            Allow::Anyone => &[],
            Allow::Only(ids) => ids,
        };
        ids.iter().map(String::as_str).filter(|id| is_group(id))
    }

    /// Whether `user` is allowed, directly or through one of the groups in
    /// `members` (group id → user ids). Only Slack ids count, never names.
    pub fn allows(&self, user: &str, members: &HashMap<String, Vec<String>>) -> bool {
        match self {
            Allow::Anyone => true,
            Allow::Only(ids) => ids.iter().any(|id| {
                id == user
                    || (is_group(id)
                        && members
                            .get(id)
                            .is_some_and(|m| m.iter().any(|member| member == user)))
            }),
        }
    }

    /// The list as Slack mentions, for "ask one of …" messages.
    pub fn describe(&self) -> String {
        match self {
            Allow::Anyone => "anyone".into(),
            Allow::Only(ids) if ids.is_empty() => "nobody".into(),
            Allow::Only(ids) => ids
                .iter()
                .map(|id| {
                    if is_group(id) {
                        format!("<!subteam^{id}>")
                    } else {
                        format!("<@{id}>")
                    }
                })
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

fn clean(ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

pub fn is_group(id: &str) -> bool {
    id.starts_with('S')
}

/// The three lists from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub requesters: Allow,
    pub approvers: Allow,
    pub admins: Allow,
}

impl Policy {
    pub fn new(requesters: &[String], approvers: &[String], admins: &[String]) -> Policy {
        Policy {
            requesters: Allow::anyone_if_empty(requesters),
            approvers: Allow::anyone_if_empty(approvers),
            admins: Allow::nobody_if_empty(admins),
        }
    }

    /// Every group any list names.
    pub fn groups(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .requesters
            .groups()
            .chain(self.approvers.groups())
            .chain(self.admins.groups())
            .map(str::to_string)
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn allow_lists() {
        let members: HashMap<String, Vec<String>> =
            [("S_SRE".to_string(), ids(&["U_CAROL", "U_DAVE"]))].into();
        let only = Allow::anyone_if_empty(&ids(&["U_BOB", " S_SRE ", ""]));
        let cases = [
            ("U_BOB", true),
            ("U_CAROL", true),
            ("U_DAVE", true),
            ("U_ALICE", false),
            ("bob", false), // names never count
        ];
        for (user, allowed) in cases {
            assert_eq!(only.allows(user, &members), allowed, "{user}");
        }
        // A group whose members are unknown allows nobody through it.
        assert!(!only.allows("U_CAROL", &HashMap::new()));
        assert!(Allow::anyone_if_empty(&[]).allows("U_ANY", &HashMap::new()));
        assert!(!Allow::nobody_if_empty(&ids(&["", " "])).allows("U_ANY", &HashMap::new()));
    }

    #[test]
    fn policy_groups_and_descriptions() {
        let p = Policy::new(
            &ids(&["S_DEV"]),
            &ids(&["U_BOB", "S_SRE"]),
            &ids(&["S_SRE"]),
        );
        assert_eq!(p.groups(), ids(&["S_DEV", "S_SRE"]));
        assert_eq!(p.approvers.describe(), "<@U_BOB>, <!subteam^S_SRE>");
        assert_eq!(Policy::new(&[], &[], &[]).admins.describe(), "nobody");
        assert_eq!(Policy::new(&[], &[], &[]).approvers.describe(), "anyone");
    }
}
