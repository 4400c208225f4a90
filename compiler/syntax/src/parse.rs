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
/// the next one.
pub fn split(text: &str) -> Vec<Chunk> {
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
        chunks.push(Chunk { start: 0, end: text.len(), kind: "error", name: String::new(), doc: String::new() });
    }
    chunks
}

/// What went wrong while reading a declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SyntaxErrorKind {
    /// A token the grammar does not allow here.
    UnexpectedToken { found: String, expected: Vec<String> },
    /// The declaration ended too early.
    UnexpectedEnd { expected: Vec<String> },
    /// Characters that start no token.
    InvalidCharacters,
    UnterminatedComment,
    UnterminatedString,
    /// Brackets nested deeper than [`MAX_NESTING`].
    TooDeep { depth: usize },
    /// Text before the first declaration.
    NotADeclaration { found: String },
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
        return Parsed { item: Item::Error(whole), errors };
    };
    if !first.tok.starts_item() {
        errors.push(SyntaxError {
            kind: SyntaxErrorKind::NotADeclaration { found: first.tok.describe() },
            span: Span::new(first.start, first.end),
        });
        return Parsed { item: Item::Error(whole), errors };
    }
    if let Some((depth, at)) = too_deep(&code) {
        errors.push(SyntaxError { kind: SyntaxErrorKind::TooDeep { depth }, span: at });
        return Parsed { item: Item::Error(whole), errors };
    }
    let mut recovered = Vec::new();
    let stream = code.iter().map(|t| Ok::<_, LexError>((t.start, t.tok, t.end)));
    let result = ItemParser::new().parse(&mut recovered, stream);
    let mut grammar_errors: Vec<SyntaxError> = recovered.into_iter().map(|r| convert(r.error, text.len())).collect();
    let item = match result {
        Ok(item) => item,
        Err(e) => {
            grammar_errors.push(convert(e, text.len()));
            Item::Error(whole)
        }
    };
    grammar_errors.sort_by_key(|e| e.span.start);
    // Text after a complete declaration is not part of it.
    if let (Some(first_error), Some(end)) = (grammar_errors.first_mut(), declaration_end(&code, text)) {
        if first_error.span.start as usize >= end {
            if let SyntaxErrorKind::UnexpectedToken { found, .. } = &first_error.kind {
                first_error.kind = SyntaxErrorKind::NotADeclaration { found: found.clone() };
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
            _ if prev_ends_operand && !matches!(t.tok, Unit(_)) => chain = saved.last().copied().unwrap_or(0),
            _ => {}
        }
        prev_ends_operand = matches!(t.tok, Ident(_) | Int(_) | Float(_) | Unit(_) | Str(_) | RParen | RBracket);
    }
    None
}

/// Where the declaration's own text ends: after its closing brace, or for an
/// import at the end of its line.
fn declaration_end(code: &[crate::lexer::Spanned<'_>], text: &str) -> Option<usize> {
    let first = code.first()?;
    if first.tok == Tok::Import {
        let line_end = text[first.start..].find('\n').map_or(text.len(), |i| first.start + i);
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
        ParseError::InvalidToken { location } => {
            SyntaxError { kind: SyntaxErrorKind::InvalidCharacters, span: Span::new(location, location + 1) }
        }
        ParseError::UnrecognizedEof { location, expected } => SyntaxError {
            kind: SyntaxErrorKind::UnexpectedEnd { expected: clean_expected(expected) },
            span: Span::new(location.min(len), location.min(len)),
        },
        ParseError::UnrecognizedToken { token: (l, tok, r), expected } => SyntaxError {
            kind: SyntaxErrorKind::UnexpectedToken { found: tok.describe(), expected: clean_expected(expected) },
            span: Span::new(l, r),
        },
        ParseError::ExtraToken { token: (l, tok, r) } => SyntaxError {
            kind: SyntaxErrorKind::UnexpectedToken { found: tok.describe(), expected: vec![] },
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
        assert_eq!(kinds, vec![("import", "std.hw.host"), ("workload", "w"), ("mapping", "m")]);
        assert_eq!(chunks[1].doc, "Doc.");
        assert!(text[chunks[1].start..chunks[1].end].starts_with("/// Doc."));
        assert_eq!(chunks[2].end, text.len());
        assert_eq!(chunks[0].start, 0);
        // Chunks tile the file.
        for pair in chunks.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
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
        assert!(matches!(parsed.errors[0].kind, SyntaxErrorKind::NotADeclaration { .. }));
    }

    #[test]
    fn parses_a_workload() {
        let parsed = parse_item(
            "workload mlp(B = 256, K = 1024, N = 4096) {\n  input x : f32[B, K]\n  weight w : f32[K, N] @sparse(2:4 along K)\n  output y : f32[B, N]\n  y[i, j] = relu(sum[k] x[i, k] * w[k, j])\n}",
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let Item::Workload(w) = parsed.item else { panic!("not a workload") };
        assert_eq!(w.params.len(), 3);
        assert_eq!(w.body.len(), 4);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("workload w {{ y = {}1{} }}", "(".repeat(100_000), ")".repeat(100_000));
        let parsed = parse_item(&text);
        assert!(matches!(parsed.errors[0].kind, SyntaxErrorKind::TooDeep { .. }));
    }

    #[test]
    fn long_operator_chains_are_refused() {
        let text = format!("workload w {{ y = {}1 }}", "1 + ".repeat(100_000));
        let parsed = parse_item(&text);
        assert!(matches!(parsed.errors[0].kind, SyntaxErrorKind::TooDeep { .. }));
        // Many ordinary statements are fine.
        let text = format!("workload w {{ {} }}", "y = a + b * c\n".repeat(10_000));
        assert!(parse_item(&text).errors.is_empty());
    }

    #[test]
    fn stray_text_after_a_declaration() {
        let parsed = parse_item("workload w { }\nc[m, n] = 1");
        assert!(matches!(parsed.errors[0].kind, SyntaxErrorKind::NotADeclaration { .. }), "{:?}", parsed.errors);
        let parsed = parse_item("import std.nn.relu\ndef layer(x):");
        assert!(matches!(parsed.errors[0].kind, SyntaxErrorKind::NotADeclaration { .. }), "{:?}", parsed.errors);
    }

    #[test]
    fn one_grammar_error_per_declaration() {
        let parsed = parse_item("workload w { input x : f32[ ]] output y y y }");
        assert_eq!(parsed.errors.len(), 1);
    }
}
