//! The lexer: logos tokens plus one context rule (a name right after a number on
//! the same line is that number's unit).

use logos::Logos;

/// Why a piece of input is not a token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LexError {
    /// A character that starts no token.
    #[default]
    UnexpectedChar,
    /// A `/*` comment without its `*/`.
    UnterminatedComment,
    /// A `"` string without its closing quote on the same line.
    UnterminatedString,
}

/// Every token of `.arch`, comments included (the parser skips them, the
/// formatter keeps them).
#[derive(Logos, Debug, Clone, Copy, PartialEq, Eq)]
#[logos(error = LexError)]
#[logos(skip r"[ \t\r\n\x0C]+")]
pub enum Tok<'s> {
    #[token("import")]
    Import,
    #[token("workload")]
    Workload,
    #[token("hardware")]
    Hardware,
    #[token("mapping")]
    Mapping,
    #[token("op")]
    Op,
    #[token("neuron")]
    Neuron,
    #[token("for")]
    For,
    #[token("on")]
    On,
    #[token("extends")]
    Extends,
    #[token("input")]
    Input,
    #[token("weight")]
    Weight,
    #[token("output")]
    Output,
    #[token("sum")]
    Sum,
    #[token("max")]
    Max,
    #[token("min")]
    Min,
    #[token("auto")]
    Auto,
    #[token("in")]
    In,
    #[token("pow2")]
    Pow2,
    #[token("per")]
    Per,
    #[token("over")]
    Over,
    #[token("along")]
    Along,
    #[token("error")]
    ErrorKw,
    #[token("at")]
    At,
    #[token("state")]
    State,
    #[token("fire")]
    Fire,
    #[token("reset")]
    Reset,

    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'s str),
    /// Never produced by logos: an identifier right after a number on the same
    /// line becomes a `Unit` in [`lex`].
    Unit(&'s str),
    #[regex(r"[0-9][0-9_]*")]
    Int(&'s str),
    #[regex(r"[0-9][0-9_]*\.[0-9][0-9_]*([eE][+-]?[0-9]+)?")]
    #[regex(r"[0-9][0-9_]*[eE][+-]?[0-9]+")]
    Float(&'s str),
    #[token("\"", lex_string)]
    Str(&'s str),

    /// `// ...` to the end of the line; `/// ...` is a doc comment
    /// (see [`Tok::is_doc_comment`]).
    #[regex(r"//[^\n]*", allow_greedy = true)]
    LineComment(&'s str),
    #[token("/*", lex_block_comment)]
    BlockComment(&'s str),

    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
    #[token("<")]
    Lt,
    #[token(">")]
    Gt,
    #[token("<=")]
    Le,
    #[token(">=")]
    Ge,
    #[token("==")]
    EqEq,
    #[token("=")]
    Eq,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    AtSign,
    #[token("->")]
    Arrow,
}

fn lex_string<'s>(lex: &mut logos::Lexer<'s, Tok<'s>>) -> Result<&'s str, LexError> {
    let rest = lex.remainder();
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            '\n' => break,
            '\\' if !escaped => escaped = true,
            '"' if !escaped => {
                lex.bump(i + 1);
                return Ok(&rest[..i]);
            }
            _ => escaped = false,
        }
    }
    let line_end = rest.find('\n').unwrap_or(rest.len());
    lex.bump(line_end);
    Err(LexError::UnterminatedString)
}

fn lex_block_comment<'s>(lex: &mut logos::Lexer<'s, Tok<'s>>) -> Result<&'s str, LexError> {
    // Block comments nest, so commenting out a region that holds one works.
    let rest = lex.remainder();
    let bytes = rest.as_bytes();
    let mut depth = 1usize;
    let mut i = 0;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    lex.bump(i);
                    return Ok(lex.slice());
                }
            }
            _ => i += 1,
        }
    }
    lex.bump(rest.len());
    Err(LexError::UnterminatedComment)
}

impl Tok<'_> {
    /// Comments are trivia: kept for formatting, skipped by the parser.
    pub fn is_trivia(&self) -> bool {
        matches!(self, Tok::LineComment(_) | Tok::BlockComment(_))
    }

    /// The token as the user would write it, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("name `{s}`"),
            Tok::Unit(s) => format!("unit `{s}`"),
            Tok::Int(s) | Tok::Float(s) => format!("number `{s}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::LineComment(_) | Tok::BlockComment(_) => "a comment".into(),
            other => format!("`{}`", other.text()),
        }
    }

    /// Source text of fixed tokens (keywords and punctuation).
    pub fn text(&self) -> &str {
        match self {
            Tok::Import => "import",
            Tok::Workload => "workload",
            Tok::Hardware => "hardware",
            Tok::Mapping => "mapping",
            Tok::Op => "op",
            Tok::Neuron => "neuron",
            Tok::For => "for",
            Tok::On => "on",
            Tok::Extends => "extends",
            Tok::Input => "input",
            Tok::Weight => "weight",
            Tok::Output => "output",
            Tok::Sum => "sum",
            Tok::Max => "max",
            Tok::Min => "min",
            Tok::Auto => "auto",
            Tok::In => "in",
            Tok::Pow2 => "pow2",
            Tok::Per => "per",
            Tok::Over => "over",
            Tok::Along => "along",
            Tok::ErrorKw => "error",
            Tok::At => "at",
            Tok::State => "state",
            Tok::Fire => "fire",
            Tok::Reset => "reset",
            Tok::Ident(s)
            | Tok::Unit(s)
            | Tok::Int(s)
            | Tok::Float(s)
            | Tok::Str(s)
            | Tok::LineComment(s)
            | Tok::BlockComment(s) => s,
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Lt => "<",
            Tok::Gt => ">",
            Tok::Le => "<=",
            Tok::Ge => ">=",
            Tok::EqEq => "==",
            Tok::Eq => "=",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Dot => ".",
            Tok::DotDot => "..",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::AtSign => "@",
            Tok::Arrow => "->",
        }
    }

    /// `/// text` documents the declaration after it (`////` does not).
    pub fn is_doc_comment(&self) -> bool {
        matches!(self, Tok::LineComment(s) if s.starts_with("///") && !s.starts_with("////"))
    }

    /// The keyword text of a declaration keyword (`"error"` for others).
    pub fn text_static(&self) -> &'static str {
        match self {
            Tok::Import => "import",
            Tok::Workload => "workload",
            Tok::Hardware => "hardware",
            Tok::Mapping => "mapping",
            Tok::Op => "op",
            Tok::Neuron => "neuron",
            _ => "error",
        }
    }

    /// Keywords that start a top-level declaration.
    pub fn starts_item(&self) -> bool {
        matches!(
            self,
            Tok::Import | Tok::Workload | Tok::Hardware | Tok::Mapping | Tok::Op | Tok::Neuron
        )
    }
}

/// One lexed token with its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spanned<'s> {
    pub tok: Tok<'s>,
    pub start: usize,
    pub end: usize,
}

/// A lexical error with its byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpannedLexError {
    pub error: LexError,
    pub start: usize,
    pub end: usize,
}

/// Lexes the whole text, comments included. Applies the unit rule: an
/// identifier that follows a number on the same line (only blanks between)
/// is that number's unit, and so is an identifier right after `/` that
/// follows a unit without blanks: `GB/s` and `flop/cycle` are one token.
pub fn lex(text: &str) -> (Vec<Spanned<'_>>, Vec<SpannedLexError>) {
    let mut tokens: Vec<Spanned<'_>> = Vec::new();
    let mut errors = Vec::new();
    let mut lexer = Tok::lexer(text);
    while let Some(result) = lexer.next() {
        let range = lexer.span();
        match result {
            Ok(mut tok) => {
                // `op` is a keyword, and also the unit of `op/cycle` and `pJ/op`.
                let unit_candidate = match tok {
                    Tok::Ident(name) => Some(name),
                    Tok::Op => Some(&text[range.clone()]),
                    _ => None,
                };
                if let Some(name) = unit_candidate {
                    if let Some(unit_start) = unit_slash_before(&tokens, range.start) {
                        // `GB/s`: one unit token for the whole written unit.
                        tokens.truncate(tokens.len() - 2);
                        let whole = &text[unit_start..range.end];
                        tokens.push(Spanned {
                            tok: Tok::Unit(whole),
                            start: unit_start,
                            end: range.end,
                        });
                        continue;
                    }
                    if follows_number_on_same_line(text, &tokens, range.start) {
                        tok = Tok::Unit(name);
                    }
                }
                tokens.push(Spanned {
                    tok,
                    start: range.start,
                    end: range.end,
                });
            }
            Err(error) => {
                // Merge runs of unknown characters into one error.
                if let (LexError::UnexpectedChar, Some(last)) = (&error, errors.last_mut()) {
                    let last: &mut SpannedLexError = last;
                    if last.error == LexError::UnexpectedChar && last.end == range.start {
                        last.end = range.end;
                        continue;
                    }
                }
                errors.push(SpannedLexError {
                    error,
                    start: range.start,
                    end: range.end,
                });
            }
        }
    }
    (tokens, errors)
}

fn follows_number_on_same_line(text: &str, tokens: &[Spanned<'_>], start: usize) -> bool {
    match tokens.last() {
        Some(Spanned {
            tok: Tok::Int(_) | Tok::Float(_),
            end,
            ..
        }) => {
            let between = &text[*end..start];
            !between.contains('\n') && between.chars().all(|c| c == ' ' || c == '\t')
        }
        _ => false,
    }
}

/// Where the unit starts if the tokens end in `unit /` written without
/// blanks right before `start`.
fn unit_slash_before(tokens: &[Spanned<'_>], start: usize) -> Option<usize> {
    match tokens {
        [.., unit @ Spanned {
            tok: Tok::Unit(_), ..
        }, slash @ Spanned {
            tok: Tok::Slash, ..
        }] if unit.end == slash.start && slash.end == start => Some(unit.start),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Tok<'_>> {
        lex(text).0.into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn units_follow_numbers_on_the_same_line() {
        assert_eq!(
            kinds("bandwidth 20 GB/s"),
            vec![Tok::Ident("bandwidth"), Tok::Int("20"), Tok::Unit("GB/s")]
        );
        assert_eq!(
            kinds("cores 2\nlevel"),
            vec![Tok::Ident("cores"), Tok::Int("2"), Tok::Ident("level")]
        );
        assert_eq!(
            kinds("int8: 256 op/cycle"),
            vec![
                Tok::Ident("int8"),
                Tok::Colon,
                Tok::Int("256"),
                Tok::Unit("op/cycle")
            ]
        );
        assert_eq!(
            kinds("0.3 pJ/op"),
            vec![Tok::Float("0.3"), Tok::Unit("pJ/op")]
        );
        assert_eq!(kinds("op relu"), vec![Tok::Op, Tok::Ident("relu")]);
    }

    #[test]
    fn ranges_are_not_floats() {
        assert_eq!(
            kinds("16..256"),
            vec![Tok::Int("16"), Tok::DotDot, Tok::Int("256")]
        );
        assert_eq!(
            kinds("1e-3 2.5"),
            vec![Tok::Float("1e-3"), Tok::Float("2.5")]
        );
    }

    #[test]
    fn unterminated_things_are_errors() {
        let (_, errors) = lex("/* open /* nested */");
        assert_eq!(errors[0].error, LexError::UnterminatedComment);
        let (_, errors) = lex("\"open\nx");
        assert_eq!(errors[0].error, LexError::UnterminatedString);
    }

    #[test]
    fn doc_comments_are_not_line_comments() {
        let toks = kinds("/// doc\n// plain\n//// rule");
        assert!(toks[0].is_doc_comment());
        assert!(!toks[1].is_doc_comment());
        assert!(!toks[2].is_doc_comment());
    }
}
