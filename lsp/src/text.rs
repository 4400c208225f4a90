//! Positions: LSP's (line, UTF-16 column) pairs against byte offsets into
//! the text, and incremental edits. Every position a client sends is taken
//! as valid: lines past the end clamp to the end, columns past a line's end
//! clamp to its end, a column inside a surrogate pair (or a `\r\n`) clamps
//! to the character boundary before it.

use tower_lsp_server::ls_types::{Position, Range};

/// The byte offset where each line starts.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    /// The LSP position of byte `offset` (clamped to the text and to a
    /// character boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .starts
            .partition_point(|s| *s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0).min(offset);
        let column: usize = text[start..offset].chars().map(char::len_utf16).sum();
        Position::new(saturate(line), saturate(column))
    }

    pub fn range(&self, text: &str, start: usize, end: usize) -> Range {
        Range::new(self.position(text, start), self.position(text, end))
    }

    /// The byte offset of an LSP position, clamped as the module says.
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let line = pos.line as usize;
        let Some(&start) = self.starts.get(line) else {
            return text.len();
        };
        let end = self
            .starts
            .get(line + 1)
            .map_or(text.len(), |next| next - 1)
            .min(text.len());
        let line_text = text.get(start..end).unwrap_or("");
        let line_text = line_text.strip_suffix('\r').unwrap_or(line_text);
        let mut units = 0usize;
        for (i, c) in line_text.char_indices() {
            let next = units + c.len_utf16();
            if next > pos.character as usize {
                return start + i;
            }
            units = next;
        }
        start + line_text.len()
    }
}

fn saturate(x: usize) -> u32 {
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// Applies one content change: the whole text when `range` is `None`.
/// Returns the new line index.
pub fn apply_change(
    text: &mut String,
    index: &LineIndex,
    range: Option<Range>,
    new: &str,
) -> LineIndex {
    match range {
        None => {
            text.clear();
            text.push_str(new);
        }
        Some(r) => {
            let a = index.offset(text, r.start);
            let b = index.offset(text, r.end);
            let (a, b) = (a.min(b), a.max(b));
            text.replace_range(a..b, new);
        }
    }
    LineIndex::new(text)
}

/// The identifier (or number with its unit) touching byte `offset`.
pub fn word_at(text: &str, offset: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let offset = offset.min(bytes.len());
    let mut start = offset;
    while start > 0 && is_word(bytes[start - 1]) {
        start -= 1;
    }
    let mut end = offset;
    while end < bytes.len() && is_word(bytes[end]) {
        end += 1;
    }
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units_and_clamp() {
        let text = "ab\n\u{1F600}x\r\nlast";
        let ix = LineIndex::new(text);
        // The emoji is two UTF-16 units and four bytes.
        assert_eq!(ix.offset(text, Position::new(1, 2)), 7);
        assert_eq!(ix.position(text, 7), Position::new(1, 2));
        // Inside the surrogate pair: the boundary before it.
        assert_eq!(ix.offset(text, Position::new(1, 1)), 3);
        // Past the line's end (before `\r\n`), past the last line.
        assert_eq!(ix.offset(text, Position::new(1, 99)), 8);
        assert_eq!(ix.offset(text, Position::new(9, 0)), text.len());
        assert_eq!(ix.position(text, 999), Position::new(2, 4));
    }

    #[test]
    fn edits_apply_in_either_direction() {
        let mut text = "hello world".to_string();
        let ix = LineIndex::new(&text);
        let r = Range::new(Position::new(0, 11), Position::new(0, 6));
        apply_change(&mut text, &ix, Some(r), "there");
        assert_eq!(text, "hello there");
        let ix = LineIndex::new(&text);
        apply_change(&mut text, &ix, None, "new");
        assert_eq!(text, "new");
    }

    #[test]
    fn words_are_found_around_the_cursor() {
        assert_eq!(word_at("a + foo_1 b", 5), Some((4, 9)));
        assert_eq!(word_at("a + foo_1 b", 9), Some((4, 9)));
        assert_eq!(word_at("  ", 1), None);
    }
}
