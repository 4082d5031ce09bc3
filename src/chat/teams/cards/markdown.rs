//! Teams markdown: the [`Markup`] of the shared wording, escaping of
//! untrusted text, and the bot's neutral text (`*bold*`, `<@USER>`, …) made
//! Teams markdown.

use super::*;

/// Teams markdown for the shared wording.
pub(super) struct Teams<'a> {
    pub(super) names: Names<'a>,
}

impl Markup for Teams<'_> {
    fn text(&self, s: &str, max: usize) -> String {
        escape(&truncate_chars(s, max))
    }
    fn code(&self, s: &str, max: usize) -> String {
        // Teams markdown has no inline code; the text itself, escaped.
        escape(&truncate_chars(s, max))
    }
    fn user(&self, id: &str) -> String {
        user(self.names, id)
    }
    fn when(&self, t: DateTime<Utc>) -> String {
        when(t)
    }
    fn bold(&self, s: &str) -> String {
        format!("**{s}**")
    }
    fn italic(&self, s: &str) -> String {
        format!("_{s}_")
    }
    fn link(&self, text: &str, url: &str) -> String {
        // A space or parenthesis would end a markdown link's URL early.
        let url = url
            .replace(' ', "%20")
            .replace('(', "%28")
            .replace(')', "%29");
        format!("[{}]({url})", escape(text))
    }
}

/// A time in each reader's own zone (Teams evaluates the functions).
pub(super) fn when(t: DateTime<Utc>) -> String {
    let iso = t.format("%Y-%m-%dT%H:%M:%SZ");
    format!("{{{{DATE({iso}, SHORT)}}}} {{{{TIME({iso})}}}}")
}

/// A person's display name, escaped; "someone" when it is not known.
pub(super) fn user(names: Names, id: &str) -> String {
    match names(id) {
        Some(name) if !name.trim().is_empty() => escape(&truncate_chars(name.trim(), 100)),
        _ => "someone".into(),
    }
}

/// Untrusted text made inert inside Teams markdown, on one line: every
/// markdown, HTML and tag character is backslash-escaped (CommonMark), `{{`
/// cannot start a template function, control characters go.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev = '\0';
    for c in s.chars() {
        match c {
            '\\' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '&' | '~' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            // `{{DATE(…)}}` is evaluated before markdown: keep the braces apart.
            '{' if prev == '{' => out.push_str("\u{200b}{"),
            '\n' | '\r' => out.push(' '),
            '\t' => out.push_str("    "),
            c if c.is_control() => {}
            c => out.push(c),
        }
        prev = c;
    }
    out
}

/// An escaped line that also cannot start a block (list, heading, quote,
/// indented code): leading spaces become no-break spaces, a leading list
/// marker is escaped.
pub(super) fn escape_line(line: &str) -> String {
    let body = escape(line);
    let trimmed = body.trim_start_matches(' ');
    let indent = "\u{a0}".repeat(body.len() - trimmed.len());
    let mut rest = trimmed.to_string();
    if rest.starts_with(['-', '+', '=']) {
        rest.insert(0, '\\');
    } else {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && rest[digits..].starts_with(['.', ')']) {
            rest.insert(digits, '\\');
        }
    }
    if rest.is_empty() && indent.is_empty() {
        // An empty TextBlock collapses; keep the line's height.
        return "\u{a0}".into();
    }
    indent + &rest
}

/// The app's neutral text (`*bold*`, `_italic_`, `` `code` ``, `<@USER>`,
/// `<url|text>`) as Teams markdown, one entry per line; everything else is
/// escaped like untrusted text.
pub fn markdown(text: &str, names: Names) -> Vec<String> {
    text.lines()
        .map(|line| markdown_line(line, names))
        .collect()
}

pub(super) fn markdown_line(line: &str, names: Names) -> String {
    let mut out = String::new();
    let mut plain = String::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    let flush = |plain: &mut String, out: &mut String| {
        if !plain.is_empty() {
            let escaped = if out.is_empty() {
                escape_line(plain)
            } else {
                escape(plain)
            };
            out.push_str(&escaped);
            plain.clear();
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let close = |delim: char| -> Option<usize> {
            let j = chars[i + 1..].iter().position(|&x| x == delim)? + i + 1;
            Some(j)
        };
        match c {
            '`' => {
                if let Some(j) = close('`').filter(|&j| j > i + 1) {
                    flush(&mut plain, &mut out);
                    let inner: String = chars[i + 1..j].iter().collect();
                    out.push_str(&escape(&inner));
                    i = j + 1;
                    continue;
                }
            }
            '*' | '_' => {
                let opens = chars.get(i + 1).is_some_and(|n| !n.is_whitespace())
                    && (i == 0 || !chars[i - 1].is_alphanumeric());
                if let Some(j) = close(c).filter(|&j| {
                    opens
                        && j > i + 1
                        && !chars[j - 1].is_whitespace()
                        && chars.get(j + 1).is_none_or(|n| !n.is_alphanumeric())
                }) {
                    flush(&mut plain, &mut out);
                    let inner: String = chars[i + 1..j].iter().collect();
                    let inner = markdown_line(&inner, names);
                    let inner = inner.trim_start_matches('\\');
                    out.push_str(&if c == '*' {
                        format!("**{inner}**")
                    } else {
                        format!("_{inner}_")
                    });
                    i = j + 1;
                    continue;
                }
            }
            '<' => {
                if let Some(j) = close('>') {
                    let inner: String = chars[i + 1..j].iter().collect();
                    if let Some(id) = inner.strip_prefix('@').filter(|id| {
                        !id.is_empty()
                            && id
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    }) {
                        flush(&mut plain, &mut out);
                        out.push_str(&user(names, id));
                        i = j + 1;
                        continue;
                    }
                    if let Some(link) = link(&inner) {
                        flush(&mut plain, &mut out);
                        out.push_str(&link);
                        i = j + 1;
                        continue;
                    }
                }
            }
            _ => {}
        }
        plain.push(c);
        i += 1;
    }
    flush(&mut plain, &mut out);
    if out.is_empty() { "\u{a0}".into() } else { out }
}

/// `<url|text>` or `<url>` as a markdown link, for http(s) URLs only.
pub(super) fn link(inner: &str) -> Option<String> {
    let (url, text) = inner.split_once('|').unwrap_or((inner, inner));
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '<' | '>'));
    ok.then(|| format!("[{}]({url})", escape(text)))
}

/// Plain text of the neutral markup: no markup, names for mentions.
pub(super) fn plain_text(text: &str, names: Names) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let inner = &after[..end];
                if let Some(id) = inner.strip_prefix('@') {
                    out.push_str(&names(id).unwrap_or_else(|| "someone".into()));
                } else if let Some((url, text)) = inner.split_once('|') {
                    out.push_str(&format!("{text} ({url})"));
                } else {
                    out.push('<');
                    out.push_str(inner);
                    out.push('>');
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace('`', "").replace("*", "")
}
