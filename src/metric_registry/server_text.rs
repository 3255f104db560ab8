//! One server's encoded series, kept by its family (`server_family.rs`) and written by the
//! exposition cache (`cached.rs`).

/// One server's encoded series in one format and what they were encoded from.
#[derive(Debug)]
pub(super) struct ServerText {
    /// The words of the values the text was encoded from.
    pub(super) words: Vec<u64>,
    /// False when a value could not be read: encoded at every scrape.
    pub(super) reusable: bool,
    /// The encoded lines.
    pub(super) text: String,
    /// Where each line's value is in `text` (start, end), when every line is `name{labels}
    /// value`; `None` when a line carries more (an exemplar).
    pub(super) values: Option<Vec<(u32, u32)>>,
}

/// The texts of one server's series, per format (see [`Format::index`](super::text_format::Format)).
pub(super) type ServerTexts = [Option<ServerText>; 2];
