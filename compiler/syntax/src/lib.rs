//! Syntax of the `.arch` language: lexer, grammar, syntax tree, the split of a
//! file into declarations, and the formatter. Pure functions of text: no IO,
//! no salsa, no LSP.

pub mod ast;
pub mod lexer;

#[allow(clippy::all, clippy::unwrap_used, unused_parens, dead_code)]
mod grammar {
    include!(concat!(env!("OUT_DIR"), "/grammar.rs"));
}
pub mod parse;

pub use parse::{
    parse_item, split, Chunk, Parsed, SyntaxError, SyntaxErrorKind, MAX_EXPR_DEPTH, MAX_NESTING,
};
pub mod format;
