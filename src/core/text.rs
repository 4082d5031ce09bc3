//! Bounding text that comes from pods and users.

/// The last `max_bytes` bytes of `s`, cut forward to a char boundary, and
/// whether anything was cut.
pub fn tail_bytes(s: &str, max_bytes: usize) -> (&str, bool) {
    if s.len() <= max_bytes {
        return (s, false);
    }
    let mut start = s.len() - max_bytes;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    (&s[start..], true)
}

/// The last `n` lines of `s` (a trailing newline does not count as a line).
pub fn tail_lines(s: &str, n: usize) -> &str {
    let trimmed = s.strip_suffix('\n').unwrap_or(s);
    if n == 0 {
        return "";
    }
    match trimmed.rmatch_indices('\n').nth(n - 1) {
        Some((i, _)) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// At most `max_chars` characters of `s`; the cut is marked with `…`.
pub fn truncate_chars(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_bytes_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail_bytes("hello", 10), ("hello", false));
        assert_eq!(tail_bytes("hello", 3), ("llo", true));
        // "é" is two bytes: a cut inside it moves forward.
        assert_eq!(tail_bytes("aé", 1), ("", true));
        assert_eq!(tail_bytes("aéb", 2), ("b", true));
    }

    #[test]
    fn tail_lines_counts_lines_not_newlines() {
        assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail_lines("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(tail_lines("a\nb\nc", 1), "c");
        assert_eq!(tail_lines("abc", 0), "");
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("ééé", 2), "é…");
    }
}
