//! The formatter behind `archc fmt` and the language server's formatting.
//!
//! It works on tokens, comments included, so nothing the user wrote is lost:
//! line breaks are kept (runs of blank lines shrink to one), indentation is
//! two spaces per open bracket at the start of a line, and spacing inside a
//! line follows fixed rules. Formatting its own output changes nothing.

use crate::lexer::{lex, Spanned, Tok};

/// Formats a file. Refuses text with lexical errors (the caller reports them).
pub fn format(text: &str) -> Option<String> {
    let (tokens, errors) = lex(text);
    if !errors.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut depth: usize = 0;
    let mut prev: Option<&Spanned<'_>> = None;
    // Tokens of the current line so far, for context (`op NAME <`).
    let tight = tight_braces(&tokens);
    let generics = generic_brackets(&tokens);
    for (i, t) in tokens.iter().enumerate() {
        let newlines = match prev {
            None => 0,
            Some(p) => text[p.end..t.start].matches('\n').count(),
        };
        if t.tok.is_closer() {
            depth = depth.saturating_sub(1);
        }
        match prev {
            None => {}
            Some(p) if newlines > 0 => {
                let blank_allowed = !p.tok.is_opener() && !t.tok.is_closer();
                out.push('\n');
                if newlines > 1 && blank_allowed {
                    out.push('\n');
                }
                for _ in 0..depth {
                    out.push_str("  ");
                }
            }
            Some(p) => {
                if t.tok.is_trivia() {
                    // Keep the user's alignment of trailing comments.
                    let gap = &text[p.end..t.start];
                    out.push_str(if gap.is_empty() { " " } else { gap });
                } else if space_between(&tokens, i, &tight, &generics)
                    || !stays_apart(token_text(text, p), token_text(text, t))
                {
                    out.push(' ');
                }
            }
        }
        out.push_str(token_text(text, t));
        if t.tok.is_opener() {
            depth += 1;
        }
        prev = Some(t);
    }
    let trimmed_len = out.trim_end().len();
    out.truncate(trimmed_len);
    if !out.is_empty() {
        out.push('\n');
    }
    // Strip trailing blanks that comments or gaps may leave.
    let lines: Vec<&str> = out.lines().map(str::trim_end).collect();
    let mut result = lines.join("\n");
    if !result.is_empty() {
        result.push('\n');
    }
    Some(result)
}

/// Whether two tokens written without a blank still lex as the same two
/// tokens (`.` then `..` would lex as `..` then `.`).
fn stays_apart(a: &str, b: &str) -> bool {
    let joined = format!("{a}{b}");
    let (tokens, errors) = lex(&joined);
    errors.is_empty() && tokens.len() == 2 && tokens[0].end == a.len()
}

fn token_text<'a>(text: &'a str, t: &Spanned<'a>) -> &'a str {
    match t.tok {
        Tok::LineComment(s) => s.trim_end(),
        _ => &text[t.start..t.end],
    }
}

/// Whether one space separates token `i` from the one before it on a line.
fn space_between(
    tokens: &[Spanned<'_>],
    i: usize,
    tight: &[bool],
    generics: &(Vec<bool>, Vec<bool>),
) -> bool {
    let (opens, closes) = generics;
    use Tok::*;
    let p = tokens[i - 1].tok;
    let t = tokens[i].tok;
    let before_prev = if i >= 2 {
        Some(tokens[i - 2].tok)
    } else {
        None
    };
    if (p == LBrace && tight[i - 1]) || (t == RBrace && tight[i]) {
        return false;
    }
    match (p, t) {
        // `2:4`.
        (Colon, Int(_)) if matches!(before_prev, Some(Int(_))) => false,
        (_, Comma | RParen | RBracket | Colon | DotDot | Dot) => false,
        (LParen | LBracket | DotDot | Dot, _) => false,
        (Import, _) => true,
        // Annotations: `@sparse(...)` keeps `@` against its name.
        (AtSign, Ident(_)) if tokens[i - 1].end == tokens[i].start => false,
        // Calls, accesses, reductions, shapes: `f(`, `x[`, `sum[`.
        (Ident(_) | Sum | Max | Min, LParen) => false,
        (Gt, LParen) if closes[i - 1] => false,
        (Ident(_) | Sum | Max | Min, LBracket) => false,
        // Generics: `op matmul<M, N>(`.
        (Ident(_), Lt) if opens[i] => false,
        (Lt, _) if opens[i - 1] => false,
        (_, Gt) if closes[i] => false,
        // Unary minus.
        (Minus, _) if is_unary_minus(tokens, i - 1) => false,
        _ => true,
    }
}

/// Braces of `import m.{a, b}` and of sets `auto in {f32, bf16}` take no
/// inner spaces.
fn tight_braces(tokens: &[Spanned<'_>]) -> Vec<bool> {
    let mut tight = vec![false; tokens.len()];
    let mut stack: Vec<(usize, bool)> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        match t.tok {
            Tok::LBrace => {
                let is_tight = i > 0 && matches!(tokens[i - 1].tok, Tok::Dot | Tok::In);
                tight[i] = is_tight;
                stack.push((i, is_tight));
            }
            Tok::RBrace => {
                if let Some((_, is_tight)) = stack.pop() {
                    tight[i] = is_tight;
                }
            }
            _ => {}
        }
    }
    tight
}

/// The `<` and `>` of generics lists `op NAME<A, B>`: `(opens, closes)`,
/// each true at the bracket's position. A `<` whose list never closes before
/// `(`, `{`, `}` or `=` is a comparison.
fn generic_brackets(tokens: &[Spanned<'_>]) -> (Vec<bool>, Vec<bool>) {
    let mut opens = vec![false; tokens.len()];
    let mut closes = vec![false; tokens.len()];
    for i in 2..tokens.len() {
        if tokens[i].tok != Tok::Lt
            || tokens[i - 2].tok != Tok::Op
            || !matches!(tokens[i - 1].tok, Tok::Ident(_))
        {
            continue;
        }
        for (j, t) in tokens.iter().enumerate().skip(i + 1) {
            match t.tok {
                Tok::Gt => {
                    opens[i] = true;
                    closes[j] = true;
                    break;
                }
                Tok::LParen | Tok::LBrace | Tok::RBrace | Tok::Eq | Tok::Lt => break,
                _ => {}
            }
        }
    }
    (opens, closes)
}

fn is_unary_minus(tokens: &[Spanned<'_>], i: usize) -> bool {
    use Tok::*;
    if i == 0 {
        return true;
    }
    !matches!(
        tokens[i - 1].tok,
        Ident(_) | Unit(_) | Int(_) | Float(_) | RParen | RBracket | Str(_)
    )
}

impl Tok<'_> {
    fn is_opener(&self) -> bool {
        matches!(self, Tok::LParen | Tok::LBracket | Tok::LBrace)
    }

    fn is_closer(&self) -> bool {
        matches!(self, Tok::RParen | Tok::RBracket | Tok::RBrace)
    }
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn normalizes_spacing_and_indentation() {
        let src = "workload  w(B=2){\n      input x:f32[B , 4]\n\n\n   y[i,j]=relu( sum[k] x[i,k]*-2.0 )\n}\n";
        let want = "workload w(B = 2) {\n  input x: f32[B, 4]\n\n  y[i, j] = relu(sum[k] x[i, k] * -2.0)\n}\n";
        assert_eq!(format(src).as_deref(), Some(want));
        assert_eq!(format(want).as_deref(), Some(want));
    }

    #[test]
    fn keeps_comments_and_units() {
        let src = "hardware h : cpu {  // the host\n  clock 2 GHz   // aligned\n  level l1 { size 48 KiB per core, bandwidth 20 GB/s }\n}";
        let out = format(src).expect("formats");
        assert!(out.contains("// the host"));
        assert!(out.contains("clock 2 GHz   // aligned"));
        assert!(out.contains("size 48 KiB per core, bandwidth 20 GB/s"));
        assert_eq!(format(&out).as_deref(), Some(out.as_str()));
    }

    #[test]
    fn generics_imports_and_annotations() {
        let src = "import std.nn.{ relu , matmul }\nop mm<M,N>(a[M, N]) -> c[M, N] { c[m, n] = a[m, n] }\nworkload w { weight q : int8[4, 4] @sparse(2:4 along K) }";
        let out = format(src).expect("formats");
        assert!(out.contains("import std.nn.{relu, matmul}"), "{out}");
        assert!(out.contains("op mm<M, N>(a[M, N]) -> c[M, N]"), "{out}");
        assert!(out.contains("@sparse(2:4 along K)"), "{out}");
        assert_eq!(format(&out).as_deref(), Some(out.as_str()));
    }

    #[test]
    fn an_unclosed_generic_bracket_is_a_comparison() {
        let src = "op < <= , fire < y\n";
        let once = format(src).expect("formats");
        assert_eq!(format(&once).as_deref(), Some(once.as_str()));
        assert!(once.contains("fire < y"), "{once}");
    }

    #[test]
    fn tokens_that_would_merge_keep_a_blank() {
        let once = format("std.hw. .. { workload").expect("formats");
        assert_eq!(format(&once).as_deref(), Some(once.as_str()));
        assert!(once.contains(". .."), "{once}");
    }

    #[test]
    fn comparison_before_a_paren_keeps_its_space() {
        let src = "op f<N>(x[N]) -> y[N] { y[i] = x[i] }\nneuron n(t = 1.0) {\n  state v = 0.0\n  fire v > (t)\n}\n";
        let out = format(src).expect("formats");
        assert!(out.contains("fire v > (t)"), "{out}");
        assert!(out.contains("op f<N>(x[N])"), "{out}");
    }
}
