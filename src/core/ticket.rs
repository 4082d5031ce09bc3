//! Ticket references: the pattern they must match (`RERUN_BOT_TICKET_PATTERN`)
//! and the link they become (`RERUN_BOT_TICKET_URL`). Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The placeholder in `RERUN_BOT_TICKET_URL`.
pub const PLACEHOLDER: &str = "{ticket}";

/// What a ticket must look like, e.g. `^(INC|OPS)-[0-9]+$`. The whole ticket
/// must match (the pattern is anchored whether or not it says `^…$`).
#[derive(Debug, Clone)]
pub struct TicketPattern {
    /// As configured, for messages.
    source: String,
    anchored: regex::Regex,
}

impl TicketPattern {
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn matches(&self, ticket: &str) -> bool {
        self.anchored.is_match(ticket)
    }
}

impl PartialEq for TicketPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl FromStr for TicketPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let source = s.trim();
        if source.is_empty() {
            return Err("RERUN_BOT_TICKET_PATTERN is empty: unset it, or give a regular expression such as ^(INC|OPS)-[0-9]+$".into());
        }
        let anchored = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| {
                let why = e.to_string();
                let why = why.lines().last().unwrap_or_default().trim().to_string();
                format!(
                    "RERUN_BOT_TICKET_PATTERN `{source}` is not a valid regular expression ({why}); for example ^(INC|OPS)-[0-9]+$"
                )
            })?;
        Ok(TicketPattern {
            source: source.to_string(),
            anchored,
        })
    }
}

impl fmt::Display for TicketPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Where a ticket is looked at, e.g. `https://jira.example.com/browse/{ticket}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketUrl(String);

impl TicketUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of `ticket`: the ticket percent-encoded into every `{ticket}`.
    pub fn link(&self, ticket: &str) -> String {
        self.0.replace(
            PLACEHOLDER,
            &utf8_percent_encode(ticket, TICKET).to_string(),
        )
    }
}

/// Everything but the unreserved characters of RFC 3986 is encoded, so a
/// ticket can never leave its place in the URL (no `/`, `?`, `#`, `&`, `|`,
/// `>`, `)` or space gets through).
const TICKET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl FromStr for TicketUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let example = "for example https://jira.example.com/browse/{ticket}";
        if !s.contains(PLACEHOLDER) {
            return Err(format!(
                "RERUN_BOT_TICKET_URL `{s}` has no {PLACEHOLDER} for the ticket to go in; {example}"
            ));
        }
        if !(s.starts_with("https://") || s.starts_with("http://")) {
            return Err(format!(
                "RERUN_BOT_TICKET_URL `{s}` must start with https:// (or http://); {example}"
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || "<>|()\"`".contains(*c))
        {
            return Err(format!(
                "RERUN_BOT_TICKET_URL `{s}` contains {c:?}, which cannot be part of a chat link; percent-encode it"
            ));
        }
        let sample = TicketUrl(s.to_string()).link("INC-1");
        url::Url::parse(&sample)
            .map_err(|e| format!("RERUN_BOT_TICKET_URL `{s}` is not a URL ({e}); {example}"))?;
        Ok(TicketUrl(s.to_string()))
    }
}

impl fmt::Display for TicketUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ticket settings, as the app applies them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TicketRules {
    pub required: bool,
    pub pattern: Option<TicketPattern>,
    pub url: Option<TicketUrl>,
}

impl TicketRules {
    /// Checks a ticket as entered (`None`: none given); the error is a
    /// sentence for the person who typed it. Nothing is trimmed here: the
    /// caller passes what it will store.
    pub fn check(&self, ticket: Option<&str>) -> Result<(), String> {
        match ticket {
            None if self.required => Err(match &self.pattern {
                Some(p) => format!("A ticket reference is required here (matching {p})."),
                None => "A ticket reference is required here.".into(),
            }),
            None => Ok(()),
            Some(t) => match &self.pattern {
                Some(p) if !p.matches(t) => Err(format!(
                    "ticket `{}` does not match {p}",
                    crate::core::text::truncate_chars(t, 100)
                )),
                _ => Ok(()),
            },
        }
    }

    /// The link of a ticket, when `RERUN_BOT_TICKET_URL` is set.
    pub fn link(&self, ticket: Option<&str>) -> Option<String> {
        Some(self.url.as_ref()?.link(ticket?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(required: bool, pattern: Option<&str>) -> TicketRules {
        TicketRules {
            required,
            pattern: pattern.map(|p| p.parse().expect("valid pattern")),
            url: None,
        }
    }

    #[test]
    fn the_whole_ticket_must_match() {
        let r = rules(false, Some("^(INC|OPS)-[0-9]+$"));
        for (ticket, ok) in [
            ("INC-1", true),
            ("OPS-12345", true),
            ("inc-1", false),
            ("INC-", false),
            ("INC-1 ", false),
            ("foo", false),
        ] {
            assert_eq!(r.check(Some(ticket)).is_ok(), ok, "{ticket:?}");
        }
        assert_eq!(
            r.check(Some("foo")).unwrap_err(),
            "ticket `foo` does not match ^(INC|OPS)-[0-9]+$"
        );
        // An unanchored pattern is anchored all the same.
        let r = rules(false, Some("INC-[0-9]+"));
        assert!(r.check(Some("INC-7")).is_ok());
        assert!(r.check(Some("xINC-7y")).is_err());
        // Alternation stays inside the anchors.
        let r = rules(false, Some("INC-1|OPS-2"));
        assert!(r.check(Some("INC-1x")).is_err());
        assert!(r.check(Some("OPS-2")).is_ok());
    }

    #[test]
    fn none_is_fine_unless_required() {
        assert!(rules(false, Some("INC-[0-9]+")).check(None).is_ok());
        assert!(rules(false, None).check(Some("anything at all")).is_ok());
        let e = rules(true, Some("INC-[0-9]+")).check(None).unwrap_err();
        assert!(e.contains("required") && e.contains("INC-[0-9]+"), "{e}");
        assert_eq!(
            rules(true, None).check(None).unwrap_err(),
            "A ticket reference is required here."
        );
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let e = "(INC".parse::<TicketPattern>().unwrap_err();
        assert!(
            e.contains("RERUN_BOT_TICKET_PATTERN") && e.contains("not a valid"),
            "{e}"
        );
        assert!("  ".parse::<TicketPattern>().unwrap_err().contains("empty"));
        assert_eq!(
            " ^INC-[0-9]+$ ".parse::<TicketPattern>().unwrap().as_str(),
            "^INC-[0-9]+$"
        );
    }

    #[test]
    fn urls_need_the_placeholder_and_encode_the_ticket() {
        let url: TicketUrl = "https://jira.example.com/browse/{ticket}".parse().unwrap();
        assert_eq!(url.link("INC-1"), "https://jira.example.com/browse/INC-1");
        assert_eq!(
            url.link("a b/c?d#e&f|g>h)i"),
            "https://jira.example.com/browse/a%20b%2Fc%3Fd%23e%26f%7Cg%3Eh%29i"
        );
        assert_eq!(url.link("ü"), "https://jira.example.com/browse/%C3%BC");
        let q: TicketUrl = "https://t.example/?id={ticket}&x=1".parse().unwrap();
        assert_eq!(q.link("A&B"), "https://t.example/?id=A%26B&x=1");
        for (bad, why) in [
            ("https://jira.example.com/browse/", "has no {ticket}"),
            ("jira.example.com/{ticket}", "must start with https://"),
            ("javascript:alert({ticket})", "must start with https://"),
            ("https://x.example/a b/{ticket}", "contains ' '"),
            ("https://x.example/<{ticket}>", "contains '<'"),
            ("https://x.example/({ticket})", "contains '('"),
            ("https://[bad/{ticket}", "is not a URL"),
        ] {
            let e = bad.parse::<TicketUrl>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let r = TicketRules {
            url: Some(url),
            ..TicketRules::default()
        };
        assert_eq!(
            r.link(Some("OPS-2")).as_deref(),
            Some("https://jira.example.com/browse/OPS-2")
        );
        assert_eq!(r.link(None), None);
        assert_eq!(TicketRules::default().link(Some("OPS-2")), None);
    }
}
