//! Diagnostics as plain data: a stable code, a message, a primary location,
//! labels and a help line. Rendering lives in the driver (ariadne) and in the
//! language server; nothing here prints.

use crate::db::{Db, Decl, SourceFile};
use arch_syntax::ast::Span;

/// Every diagnostic code, its name and a one-line summary. spec/diagnostics.md
/// documents each; `tests/ui` has at least one program per code.
pub const CODES: &[(&str, &str)] = &[
    ("E0001", "unexpected token"),
    ("E0002", "declaration ends too early"),
    ("E0003", "invalid characters"),
    ("E0004", "unterminated block comment"),
    ("E0005", "unterminated string"),
    ("E0006", "brackets nested too deeply"),
    ("E0007", "text outside any declaration"),
    ("E0008", "file too large"),
    ("E0009", "file is not valid UTF-8"),
    ("E0101", "undefined name"),
    ("E0102", "duplicate definition"),
    ("E0103", "unknown module"),
    ("E0104", "module has no such declaration"),
    ("E0105", "name refers to the wrong kind of declaration"),
    ("E0201", "number does not fit"),
    ("E0202", "size must be a positive integer"),
    ("E0203", "tensor too large"),
    ("E0204", "`--set` names no size parameter"),
    ("E0205", "not a constant integer expression"),
    ("E0301", "unknown unit"),
    ("E0302", "unit mismatch"),
    ("E0401", "unknown element type"),
    ("E0402", "wrong number of indices or dimensions"),
    ("E0403", "shape mismatch"),
    ("E0404", "element type mismatch"),
    ("E0405", "index variable not bound"),
    ("E0406", "reduction over an index the body does not use"),
    ("E0407", "index both kept and reduced"),
    ("E0408", "tensor computed never or twice"),
    ("E0409", "assignment to an input or weight"),
    ("E0410", "workload graph has a cycle"),
    ("E0411", "wrong arguments in a call"),
    ("E0412", "invalid sparsity or density annotation"),
    ("E0413", "index out of bounds"),
    ("E0414", "tensor used in the wrong form"),
    ("E0415", "index expression is not affine"),
    ("E0501", "unknown hardware class"),
    ("E0502", "hardware lacks a required field"),
    ("E0503", "unknown hardware field"),
    ("E0504", "hardware field given twice"),
    ("E0505", "invalid `extends`"),
    ("E0506", "invalid hardware value"),
    ("E0601", "unknown mapping knob"),
    ("E0602", "knob names no computed tensor"),
    ("E0603", "knob names no dimension of the op"),
    ("E0604", "tile larger than its dimension"),
    ("E0605", "tile does not fit its memory level"),
    ("E0606", "unknown memory level"),
    ("E0607", "invalid knob value"),
    ("E0608", "knob given twice"),
    ("E0609", "workload does not fit the hardware's memory"),
    ("E0610", "no schedule satisfies the mapping's constraints"),
    ("E0701", "invalid neuron model"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// Where a diagnostic points: a declaration and a range relative to its
/// start, so that moving a declaration changes no diagnostic value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, salsa::SalsaValue)]
pub struct Location<'db> {
    pub decl: Decl<'db>,
    pub span: Span,
}

impl<'db> Location<'db> {
    pub fn new(decl: Decl<'db>, span: Span) -> Location<'db> {
        Location { decl, span }
    }

    /// The file and the absolute byte range.
    pub fn resolve(&self, db: &dyn Db) -> (SourceFile, Span) {
        (self.decl.file(db), self.span.shift(self.decl.offset(db)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, salsa::SalsaValue)]
pub struct Label<'db> {
    pub location: Location<'db>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, salsa::SalsaValue)]
pub struct Diagnostic<'db> {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub location: Location<'db>,
    /// The message under the primary span.
    pub primary_label: String,
    pub labels: Vec<Label<'db>>,
    pub help: Option<String>,
}

impl<'db> Diagnostic<'db> {
    pub fn error(code: &'static str, location: Location<'db>, message: impl Into<String>) -> Self {
        debug_assert!(CODES.iter().any(|(c, _)| *c == code), "unknown code {code}");
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            location,
            primary_label: String::new(),
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn with_primary(mut self, label: impl Into<String>) -> Self {
        self.primary_label = label.into();
        self
    }

    pub fn with_label(mut self, location: Location<'db>, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            location,
            message: message.into(),
        });
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
}

/// Appends an error at `span` of `decl` to `diags` and returns it, for the
/// caller to add labels and help (the checkers' `error`).
pub fn push_error<'a, 'db>(
    diags: &'a mut Vec<Diagnostic<'db>>,
    decl: Decl<'db>,
    code: &'static str,
    span: Span,
    message: impl Into<String>,
) -> &'a mut Diagnostic<'db> {
    diags.push(Diagnostic::error(code, Location::new(decl, span), message));
    let last = diags.len() - 1;
    &mut diags[last]
}

/// "a workload", "an op", "an input".
pub fn article(word: &str) -> String {
    let vowel = word.chars().next().is_some_and(|c| "aeiou".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

/// A declaration kind as a noun phrase: "hardware" takes no article.
pub fn kind_phrase(kind: &str) -> String {
    if kind == "hardware" {
        "hardware".to_string()
    } else {
        article(kind)
    }
}

/// "did you mean `x`?" for the closest candidate within a small edit distance.
/// One- and two-letter names only match up to case: any letter is one edit
/// from any other.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, c)| (*d <= limit && name.chars().count() > 2) || c.eq_ignore_ascii_case(name))
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and swaps of neighbours (`hots` -> `host`) cost one each; case is ignored.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("bandwith", ["bandwidth", "size"]).as_deref(),
            Some("did you mean `bandwidth`?")
        );
        assert_eq!(did_you_mean("zzz", ["bandwidth", "size"]), None);
        assert_eq!(
            did_you_mean("kib", ["KiB", "MiB"]).as_deref(),
            Some("did you mean `KiB`?")
        );
        assert_eq!(
            did_you_mean("hots", ["host", "h100"]).as_deref(),
            Some("did you mean `host`?")
        );
    }

    #[test]
    fn codes_are_unique_and_sorted() {
        for pair in CODES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }
}
