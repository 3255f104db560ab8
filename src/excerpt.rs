//! Bounded excerpts of text that came from outside (a server's output, an error body), for
//! logs, events and failure reasons.

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut with `…`.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    format!("{}…", &text[..text.floor_char_boundary(max)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_keeps_whole_characters_and_says_so() {
        assert_eq!(cut("ééé", 3), "é…");
        assert_eq!(cut("short", 10), "short");
    }
}
