//! Positions in the configuration text: the line of a byte offset (what serde's spans give) and
//! the dotted key a line assigns (to name the key of a parser error).

use std::collections::BTreeMap;

use super::key_error::KeyError;

/// The configuration text, for turning byte offsets into lines in [`KeyError`]s.
#[derive(Debug, Clone, Copy)]
pub struct SourceText<'a> {
    text: &'a str,
}

impl<'a> SourceText<'a> {
    /// Wraps the whole text of the file.
    pub fn new(text: &'a str) -> Self {
        SourceText { text }
    }

    /// The text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The 1-based line of byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    /// A [`KeyError`] for `key` at byte `offset`.
    pub fn key_error(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> KeyError {
        KeyError::new(self.line_of(offset), key, message)
    }
}

/// Maps a byte offset in `text` to a 1-based line number.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The dotted key assigned on `line` (1-based), with its table prefix, e.g. `servers[1].timeout`
/// or `exporter.interval`; `None` when the line assigns no key.
pub fn key_at_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(line.checked_sub(1)?)?.trim();
    let (key, _) = current.split_once('=')?;
    let key = key.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.contains(char::is_whitespace) {
        return None;
    }
    let mut table: Option<String> = None;
    let mut array_counts: BTreeMap<String, usize> = BTreeMap::new();
    for l in &lines[..line - 1] {
        let l = l.trim();
        if let Some(name) = l
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(n, _)| n.trim())
        {
            let n = array_counts.entry(name.to_string()).or_insert(0);
            table = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = l
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(n, _)| n.trim())
        {
            table = Some(name.to_string());
        }
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines() {
        let text = "a = 1\nb = 2\n";
        assert_eq!(line_of(text, 0), 1);
        assert_eq!(line_of(text, 6), 2);
        assert_eq!(line_of(text, 1000), 3);
        let e = SourceText::new(text).key_error(7, "b", "wrong");
        assert_eq!(e.to_string(), "2: `b`: wrong");
    }

    #[test]
    fn the_key_of_a_line_carries_its_table() {
        let text = "top = 1\n[exporter]\ninterval = \"x\"\n[[servers]]\nname = \"a\"\n[[servers]]\n\"timeout\" = 1\nnot a key\n";
        assert_eq!(key_at_line(text, 1).as_deref(), Some("top"));
        assert_eq!(key_at_line(text, 3).as_deref(), Some("exporter.interval"));
        assert_eq!(key_at_line(text, 5).as_deref(), Some("servers[0].name"));
        assert_eq!(key_at_line(text, 7).as_deref(), Some("servers[1].timeout"));
        assert_eq!(key_at_line(text, 2), None);
        assert_eq!(key_at_line(text, 8), None);
        assert_eq!(key_at_line(text, 0), None);
        assert_eq!(key_at_line(text, 99), None);
    }
}
