//! Splitting a file into declarations and parsing one declaration. Parsing
//! never fails: it returns a tree and the errors found on the way.

use crate::ast::{Item, Span};
use crate::grammar::ItemParser;
use crate::lexer::{lex, LexError, Tok};
use lalrpop_util::ParseError;

/// Brackets nested deeper than this are refused before parsing, so that no
/// later recursive pass can overflow the stack.
pub const MAX_NESTING: usize = 256;

/// The deepest expression tree accepted (brackets plus chained operators).
pub const MAX_EXPR_DEPTH: usize = 512;

/// One declaration's text within its file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chunk {
    /// Byte range in the file, leading comments included.
    pub start: usize,
    pub end: usize,
    /// `workload`, `hardware`, ... or `error` for text before any declaration.
    pub kind: &'static str,
    /// The name after the keyword (for imports, the path as written).
    pub name: String,
    /// The `///` lines right before the keyword, without the slashes.
    pub doc: String,
}

/// Splits a file at every declaration keyword. Those keywords appear nowhere
/// else in the grammar, so an unclosed brace in one declaration never swallows
/// the next one. This runs on every edit of a file, so it scans bytes itself
/// rather than building tokens (it agrees with the lexer; see the tests).
pub fn split(text: &str) -> Vec<Chunk> {
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut trivia_start: Option<usize> = None;
    let mut doc_lines: Vec<&str> = Vec::new();
    let mut seen_code = false;
    let mut naming: Option<bool> = None;
    let mut after_number = false;
    let mut last_end = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        if matches!(c, b' ' | b'\t' | b'\r' | b'\n' | 0x0C) {
            i += 1;
            continue;
        }
        let start = i;
        let kind = scan_token(bytes, &mut i);
        match kind {
            Scanned::LineComment => {
                trivia_start.get_or_insert(start);
                let comment = &text[start..i];
                if comment.starts_with("///") && !comment.starts_with("////") {
                    doc_lines.push(comment[3..].trim());
                } else {
                    doc_lines.clear();
                }
                continue;
            }
            Scanned::BlockComment => {
                trivia_start.get_or_insert(start);
                doc_lines.clear();
                continue;
            }
            Scanned::Invalid => {
                // Like the lexer's error tokens: code, but no token.
                naming = None;
                seen_code = true;
                doc_lines.clear();
                trivia_start = None;
                continue;
            }
            _ => {}
        }
        let word = &text[start..i];
        if let (Some(is_import), Some(last)) = (naming, chunks.last_mut()) {
            let keep_going = match kind {
                Scanned::Word if keyword(word).is_none() => {
                    last.name.push_str(word);
                    is_import
                }
                Scanned::Punct if is_import && matches!(word, "." | "{" | "*") => {
                    last.name.push_str(word);
                    true
                }
                _ => false,
            };
            if !keep_going {
                naming = None;
            }
        }
        let decl_keyword = if kind == Scanned::Word {
            keyword(word)
        } else {
            None
        };
        let is_unit = word == "op" && after_number && !text[last_end..start].contains('\n');
        after_number = kind == Scanned::Number || word == "/";
        last_end = i;
        if let (Some(kw), false) = (decl_keyword, is_unit) {
            let chunk_start = trivia_start.unwrap_or(start);
            match chunks.last_mut() {
                Some(last) => last.end = chunk_start,
                None if seen_code => chunks.push(Chunk {
                    start: 0,
                    end: chunk_start,
                    kind: "error",
                    name: String::new(),
                    doc: String::new(),
                }),
                None => {}
            }
            chunks.push(Chunk {
                start: if chunks.is_empty() { 0 } else { chunk_start },
                end: text.len(),
                kind: kw,
                name: String::new(),
                doc: doc_lines.join("\n"),
            });
            naming = Some(kw == "import");
        }
        seen_code = true;
        doc_lines.clear();
        trivia_start = None;
    }
    if chunks.is_empty() && seen_code {
        chunks.push(Chunk {
            start: 0,
            end: text.len(),
            kind: "error",
            name: String::new(),
            doc: String::new(),
        });
    }
    chunks
}

/// What [`scan_token`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanned {
    Word,
    Number,
    Punct,
    LineComment,
    BlockComment,
    /// A string.
    Str,
    /// An unterminated comment or string, or characters that start no token.
    Invalid,
}

fn keyword(word: &str) -> Option<&'static str> {
    Some(match word {
        "import" => "import",
        "workload" => "workload",
        "hardware" => "hardware",
        "mapping" => "mapping",
        "op" => "op",
        "neuron" => "neuron",
        _ => return None,
    })
}

/// Advances `i` over one token starting at `bytes[*i]` (not a blank), with
/// the same boundaries as the lexer.
fn scan_token(bytes: &[u8], i: &mut usize) -> Scanned {
    let start = *i;
    let c = bytes[start];
    let at = |k: usize| bytes.get(k).copied().unwrap_or(0);
    match c {
        b'/' if at(start + 1) == b'/' => {
            *i = memchr_newline(bytes, start);
            Scanned::LineComment
        }
        b'/' if at(start + 1) == b'*' => {
            let mut depth = 1usize;
            let mut k = start + 2;
            while k + 1 < bytes.len() {
                match (bytes[k], bytes[k + 1]) {
                    (b'/', b'*') => {
                        depth += 1;
                        k += 2;
                    }
                    (b'*', b'/') => {
                        depth -= 1;
                        k += 2;
                        if depth == 0 {
                            *i = k;
                            return Scanned::BlockComment;
                        }
                    }
                    _ => k += 1,
                }
            }
            *i = bytes.len();
            Scanned::Invalid
        }
        b'"' => {
            let mut k = start + 1;
            let mut escaped = false;
            while k < bytes.len() && bytes[k] != b'\n' {
                match bytes[k] {
                    b'\\' if !escaped => escaped = true,
                    b'"' if !escaped => {
                        *i = k + 1;
                        return Scanned::Str;
                    }
                    _ => escaped = false,
                }
                k += 1;
            }
            *i = k;
            Scanned::Invalid
        }
        b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
            let mut k = start + 1;
            while k < bytes.len() && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'_') {
                k += 1;
            }
            *i = k;
            Scanned::Word
        }
        b'0'..=b'9' => {
            let digits = |mut k: usize| {
                while k < bytes.len() && (bytes[k].is_ascii_digit() || bytes[k] == b'_') {
                    k += 1;
                }
                k
            };
            let mut k = digits(start + 1);
            if at(k) == b'.' && at(k + 1).is_ascii_digit() {
                k = digits(k + 2);
            }
            if matches!(at(k), b'e' | b'E') {
                let sign = usize::from(matches!(at(k + 1), b'+' | b'-'));
                if at(k + 1 + sign).is_ascii_digit() {
                    k += 1 + sign;
                    while k < bytes.len() && bytes[k].is_ascii_digit() {
                        k += 1;
                    }
                }
            }
            *i = k;
            Scanned::Number
        }
        b'.' if at(start + 1) == b'.' => {
            *i = start + 2;
            Scanned::Punct
        }
        b'<' | b'>' | b'=' if at(start + 1) == b'=' => {
            *i = start + 2;
            Scanned::Punct
        }
        b'-' if at(start + 1) == b'>' => {
            *i = start + 2;
            Scanned::Punct
        }
        b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'<' | b'>' | b'=' | b',' | b':' | b'.'
        | b'+' | b'-' | b'*' | b'/' | b'@' => {
            *i = start + 1;
            Scanned::Punct
        }
        _ => {
            // One character that starts no token (UTF-8 aware).
            let mut k = start + 1;
            while k < bytes.len() && (bytes[k] & 0xC0) == 0x80 {
                k += 1;
            }
            *i = k;
            Scanned::Invalid
        }
    }
}

fn memchr_newline(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |p| from + p)
}

/// The reference implementation of [`split`], on the logos lexer: slower,
/// obviously right; the tests check that both agree.
#[cfg(test)]
/// Splits a file at every declaration keyword. Those keywords appear nowhere
/// else in the grammar, so an unclosed brace in one declaration never swallows
/// the next one.
pub fn split_with_logos(text: &str) -> Vec<Chunk> {
    use logos::Logos;
    let mut chunks: Vec<Chunk> = Vec::new();
    // Start of the comments that follow the last real token: they belong to
    // the next declaration.
    let mut trivia_start: Option<usize> = None;
    let mut doc_lines: Vec<&str> = Vec::new();
    let mut seen_code = false;
    // After a declaration keyword: collecting its name (imports: the path).
    let mut naming: Option<bool> = None;
    // `op` right after a number or `/` is a unit (`256 op/cycle`, `pJ/op`).
    let mut after_number = false;
    let mut last_end = 0usize;
    let mut lexer = Tok::lexer(text);
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        let Ok(tok) = result else {
            naming = None;
            seen_code = true;
            doc_lines.clear();
            trivia_start = None;
            continue;
        };
        if tok.is_trivia() {
            trivia_start.get_or_insert(range.start);
            match tok {
                Tok::LineComment(c) if tok.is_doc_comment() => doc_lines.push(c[3..].trim()),
                _ => doc_lines.clear(),
            }
            continue;
        }
        if let (Some(is_import), Some(last)) = (naming, chunks.last_mut()) {
            let keep_going = match tok {
                Tok::Ident(s) => {
                    last.name.push_str(s);
                    is_import
                }
                Tok::Dot | Tok::LBrace | Tok::Star if is_import => {
                    last.name.push_str(tok.text());
                    true
                }
                _ => false,
            };
            if !keep_going {
                naming = None;
            }
        }
        let is_unit = tok == Tok::Op && after_number && !text[last_end..range.start].contains('\n');
        after_number = matches!(tok, Tok::Int(_) | Tok::Float(_) | Tok::Slash);
        last_end = range.end;
        if tok.starts_item() && !is_unit {
            let start = trivia_start.unwrap_or(range.start);
            match chunks.last_mut() {
                Some(last) => last.end = start,
                None if seen_code => chunks.push(Chunk {
                    start: 0,
                    end: start,
                    kind: "error",
                    name: String::new(),
                    doc: String::new(),
                }),
                None => {}
            }
            chunks.push(Chunk {
                start: if chunks.is_empty() { 0 } else { start },
                end: text.len(),
                kind: tok.text_static(),
                name: String::new(),
                doc: doc_lines.join("\n"),
            });
            naming = Some(tok == Tok::Import);
        }
        seen_code = true;
        doc_lines.clear();
        trivia_start = None;
    }
    if chunks.is_empty() && seen_code {
        chunks.push(Chunk {
            start: 0,
            end: text.len(),
            kind: "error",
            name: String::new(),
            doc: String::new(),
        });
    }
    chunks
}

/// What went wrong while reading a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyntaxErrorKind {
    /// A token the grammar does not allow here.
    UnexpectedToken {
        found: String,
        expected: Vec<String>,
    },
    /// The declaration ended too early.
    UnexpectedEnd {
        expected: Vec<String>,
    },
    /// Characters that start no token.
    InvalidCharacters,
    UnterminatedComment,
    UnterminatedString,
    /// Brackets nested deeper than [`MAX_NESTING`].
    TooDeep {
        depth: usize,
    },
    /// Text before the first declaration.
    NotADeclaration {
        found: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyntaxError {
    pub kind: SyntaxErrorKind,
    /// Relative to the declaration's start.
    pub span: Span,
}

/// A declaration's tree and its syntax errors. `item` is `Item::Error` when
/// nothing could be read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Parsed {
    pub item: Item,
    pub errors: Vec<SyntaxError>,
}

/// Parses one declaration (the text of a [`Chunk`]). Reports at most one
/// grammar error per declaration: later ones are almost always echoes of it.
pub fn parse_item(text: &str) -> Parsed {
    let (tokens, lex_errors) = lex(text);
    let mut errors: Vec<SyntaxError> = lex_errors
        .iter()
        .map(|e| SyntaxError {
            kind: match e.error {
                LexError::UnexpectedChar => SyntaxErrorKind::InvalidCharacters,
                LexError::UnterminatedComment => SyntaxErrorKind::UnterminatedComment,
                LexError::UnterminatedString => SyntaxErrorKind::UnterminatedString,
            },
            span: Span::new(e.start, e.end),
        })
        .collect();
    let code: Vec<_> = tokens.into_iter().filter(|t| !t.tok.is_trivia()).collect();
    let whole = Span::new(0, text.len());
    let Some(first) = code.first() else {
        return Parsed {
            item: Item::Error(whole),
            errors,
        };
    };
    if !first.tok.starts_item() {
        errors.push(SyntaxError {
            kind: SyntaxErrorKind::NotADeclaration {
                found: first.tok.describe(),
            },
            span: Span::new(first.start, first.end),
        });
        return Parsed {
            item: Item::Error(whole),
            errors,
        };
    }
    if let Some((depth, at)) = too_deep(&code) {
        errors.push(SyntaxError {
            kind: SyntaxErrorKind::TooDeep { depth },
            span: at,
        });
        return Parsed {
            item: Item::Error(whole),
            errors,
        };
    }
    let mut recovered = Vec::new();
    let stream = code
        .iter()
        .map(|t| Ok::<_, LexError>((t.start, t.tok, t.end)));
    let result = ItemParser::new().parse(&mut recovered, stream);
    let mut grammar_errors: Vec<SyntaxError> = recovered
        .into_iter()
        .map(|r| convert(r.error, text.len()))
        .collect();
    let item = match result {
        Ok(item) => item,
        Err(e) => {
            grammar_errors.push(convert(e, text.len()));
            Item::Error(whole)
        }
    };
    grammar_errors.sort_by_key(|e| e.span.start);
    // Text after a complete declaration is not part of it.
    if let (Some(first_error), Some(end)) =
        (grammar_errors.first_mut(), declaration_end(&code, text))
    {
        if first_error.span.start as usize >= end {
            if let SyntaxErrorKind::UnexpectedToken { found, .. } = &first_error.kind {
                first_error.kind = SyntaxErrorKind::NotADeclaration {
                    found: found.clone(),
                };
            }
        }
    }
    // Lexical errors already explain the grammar errors they cause.
    if errors.is_empty() {
        errors.extend(grammar_errors.into_iter().take(1));
    }
    Parsed { item, errors }
}

/// Refuses input whose syntax tree would nest deeper than later recursive
/// passes can go: brackets deeper than [`MAX_NESTING`], or an expression
/// whose operator chains and brackets together exceed [`MAX_EXPR_DEPTH`]
/// (`a + a + ... + a` builds a tree as deep as it is long).
fn too_deep(code: &[crate::lexer::Spanned<'_>]) -> Option<(usize, Span)> {
    use Tok::*;
    let mut depth = 0usize;
    // Operators on the path from the statement's root, saved per bracket.
    let mut chain = 0usize;
    let mut saved: Vec<usize> = Vec::new();
    let mut prev_ends_operand = false;
    for t in code {
        match t.tok {
            LParen | LBracket | LBrace => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some((depth, Span::new(t.start, t.end)));
                }
                saved.push(chain);
            }
            RParen | RBracket | RBrace => {
                depth = depth.saturating_sub(1);
                chain = saved.pop().unwrap_or(0);
            }
            Plus | Minus | Star | Slash | AtSign | Lt | Gt | Le | Ge | EqEq => {
                chain += 1;
                if chain + depth > MAX_EXPR_DEPTH {
                    return Some((chain + depth, Span::new(t.start, t.end)));
                }
            }
            Eq | Comma | Colon => chain = saved.last().copied().unwrap_or(0),
            // A name right after an operand starts a new statement.
            _ if prev_ends_operand && !matches!(t.tok, Unit(_)) => {
                chain = saved.last().copied().unwrap_or(0)
            }
            _ => {}
        }
        prev_ends_operand = matches!(
            t.tok,
            Ident(_) | Int(_) | Float(_) | Unit(_) | Str(_) | RParen | RBracket
        );
    }
    None
}

/// Where the declaration's own text ends: after its closing brace, or for an
/// import at the end of its line.
fn declaration_end(code: &[crate::lexer::Spanned<'_>], text: &str) -> Option<usize> {
    let first = code.first()?;
    if first.tok == Tok::Import {
        let line_end = text[first.start..]
            .find('\n')
            .map_or(text.len(), |i| first.start + i);
        return Some(line_end);
    }
    let mut depth = 0usize;
    let mut opened = false;
    for t in code {
        match t.tok {
            Tok::LBrace => {
                depth += 1;
                opened = true;
            }
            Tok::RBrace => {
                depth = depth.saturating_sub(1);
                if opened && depth == 0 {
                    return Some(t.end);
                }
            }
            _ => {}
        }
    }
    None
}

fn convert(e: ParseError<usize, Tok<'_>, LexError>, len: usize) -> SyntaxError {
    match e {
        ParseError::InvalidToken { location } => SyntaxError {
            kind: SyntaxErrorKind::InvalidCharacters,
            span: Span::new(location, location + 1),
        },
        ParseError::UnrecognizedEof { location, expected } => SyntaxError {
            kind: SyntaxErrorKind::UnexpectedEnd {
                expected: clean_expected(expected),
            },
            span: Span::new(location.min(len), location.min(len)),
        },
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => SyntaxError {
            kind: SyntaxErrorKind::UnexpectedToken {
                found: tok.describe(),
                expected: clean_expected(expected),
            },
            span: Span::new(l, r),
        },
        ParseError::ExtraToken { token: (l, tok, r) } => SyntaxError {
            kind: SyntaxErrorKind::UnexpectedToken {
                found: tok.describe(),
                expected: vec![],
            },
            span: Span::new(l, r),
        },
        ParseError::User { error } => SyntaxError {
            kind: match error {
                LexError::UnexpectedChar => SyntaxErrorKind::InvalidCharacters,
                LexError::UnterminatedComment => SyntaxErrorKind::UnterminatedComment,
                LexError::UnterminatedString => SyntaxErrorKind::UnterminatedString,
            },
            span: Span::new(0, 0),
        },
    }
}

/// lalrpop names terminals as written in the grammar (`"\"{\""`, `IDENT`);
/// turn them into what a user reads.
fn clean_expected(expected: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = expected
        .into_iter()
        .map(|e| match e.as_str() {
            "IDENT" => "a name".to_string(),
            "UNIT" => "a unit".to_string(),
            "INT" | "FLOAT" => "a number".to_string(),
            "STR" => "a string".to_string(),
            other => format!("`{}`", other.trim_matches('"').replace("\\\"", "\"")),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_comments_with_the_next_declaration() {
        let text = "import std.hw.host\n\n/// Doc.\nworkload w { }\n// tail\nmapping m for w on host { }\n";
        let chunks = split(text);
        let kinds: Vec<_> = chunks.iter().map(|c| (c.kind, c.name.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                ("import", "std.hw.host"),
                ("workload", "w"),
                ("mapping", "m")
            ]
        );
        assert_eq!(chunks[1].doc, "Doc.");
        assert!(text[chunks[1].start..chunks[1].end].starts_with("/// Doc."));
        assert_eq!(chunks[2].end, text.len());
        assert_eq!(chunks[0].start, 0);
        // Chunks tile the file.
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

        #[test]
        fn fast_split_agrees_with_the_lexer(picks in proptest::collection::vec(0usize..PIECES.len(), 0..60)) {
            let text: String = picks.iter().map(|i| PIECES[*i]).collect();
            proptest::prop_assert_eq!(split(&text), split_with_logos(&text));
        }

        #[test]
        fn fast_split_agrees_on_any_text(text in "\\PC{0,200}") {
            proptest::prop_assert_eq!(split(&text), split_with_logos(&text));
        }
    }

    const PIECES: &[&str] = &[
        "workload", "hardware", "mapping", "op", "neuron", "import", " ", "\n", "x", "std", ".",
        "{", "}", ",", "*", "/", "//", "///", "////", " doc\n", "/*", "*/", "\"", "\\", "1", "2.5",
        "1e-3", "e", "..", "op/cycle", "pJ", "$", "é", "=", "<=", "->", "[", "]", "(", ")", "_a1",
    ];

    #[test]
    fn fast_split_agrees_on_the_stdlib_and_examples() {
        for text in [
            include_str!("../../../stdlib/hw.arch"),
            include_str!("../../../stdlib/nn.arch"),
            include_str!("../../../examples/gemm.arch"),
            include_str!("../../../examples/snn.arch"),
            include_str!("../../../examples/attention.arch"),
        ] {
            assert_eq!(split(text), split_with_logos(text));
        }
    }

    #[test]
    fn op_as_a_unit_does_not_split() {
        let chunks = split("hardware h : cpu {\n  compute c { int8: 256 op/cycle, energy 0.2 pJ/op }\n}\nop relu(x) = x");
        let kinds: Vec<_> = chunks.iter().map(|c| c.kind).collect();
        assert_eq!(kinds, vec!["hardware", "op"]);
        let chunks = split("op a(x) = x * 2\nop b(x) = x");
        assert_eq!(chunks.len(), 2);
    }

    #[test]
    fn junk_before_the_first_declaration_is_its_own_chunk() {
        let chunks = split("garbage here\nworkload w { }");
        assert_eq!(chunks[0].kind, "error");
        assert_eq!(chunks[1].kind, "workload");
        let parsed = parse_item("garbage here\n");
        assert!(matches!(
            parsed.errors[0].kind,
            SyntaxErrorKind::NotADeclaration { .. }
        ));
    }

    #[test]
    fn parses_a_workload() {
        let parsed = parse_item(
            "workload mlp(B = 256, K = 1024, N = 4096) {\n  input x : f32[B, K]\n  weight w : f32[K, N] @sparse(2:4 along K)\n  output y : f32[B, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j])\n}",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let Item::Workload(w) = parsed.item else {
            panic!("not a workload")
        };
        assert_eq!(w.params.len(), 3);
        assert_eq!(w.body.len(), 4);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!(
            "workload w {{ y = {}1{} }}",
            "(".repeat(100_000),
            ")".repeat(100_000)
        );
        let parsed = parse_item(&text);
        assert!(matches!(
            parsed.errors[0].kind,
            SyntaxErrorKind::TooDeep { .. }
        ));
    }

    #[test]
    fn long_operator_chains_are_refused() {
        let text = format!("workload w {{ y = {}1 }}", "1 + ".repeat(100_000));
        let parsed = parse_item(&text);
        assert!(matches!(
            parsed.errors[0].kind,
            SyntaxErrorKind::TooDeep { .. }
        ));
        // Many ordinary statements are fine.
        let text = format!("workload w {{ {} }}", "y = a + b * c\n".repeat(10_000));
        assert!(parse_item(&text).errors.is_empty());
    }

    #[test]
    fn stray_text_after_a_declaration() {
        let parsed = parse_item("workload w { }\nc[m, n] = 1");
        assert!(
            matches!(
                parsed.errors[0].kind,
                SyntaxErrorKind::NotADeclaration { .. }
            ),
            "{:?}",
            parsed.errors
        );
        let parsed = parse_item("import std.nn.relu\ndef layer(x):");
        assert!(
            matches!(
                parsed.errors[0].kind,
                SyntaxErrorKind::NotADeclaration { .. }
            ),
            "{:?}",
            parsed.errors
        );
    }

    #[test]
    fn one_grammar_error_per_declaration() {
        let parsed = parse_item("workload w { input x : f32[ ]] output y y y }");
        assert_eq!(parsed.errors.len(), 1);
    }
}
