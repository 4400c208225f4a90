//! Collecting every diagnostic of a file: syntax, imports, duplicates, and
//! the checks of each declaration.

use crate::db::{file_decls, parse_decl, Db, Decl, SourceFile};
use crate::diag::{did_you_mean, Diagnostic, Label, Location};
use crate::hardware::hardware_model;
use crate::mapping::mapping_model;
use crate::ops::{neuron_diagnostics, op_diagnostics};
use crate::scope::{file_scope, find_module};
use crate::workload::workload_model;
use arch_syntax::ast::{ImportNames, Item, Span};
use arch_syntax::{SyntaxError, SyntaxErrorKind};

/// Every diagnostic of one declaration, spans relative to it.
#[salsa::tracked(returns(ref))]
pub fn decl_diagnostics<'db>(db: &'db dyn Db, decl: Decl<'db>) -> Vec<Diagnostic<'db>> {
    let parsed = parse_decl(db, decl);
    let mut out: Vec<Diagnostic<'db>> = parsed
        .errors
        .iter()
        .map(|e| syntax_diagnostic(decl, e))
        .collect();
    if !out.is_empty() {
        return out;
    }
    if let Some(name) = parsed.item.name() {
        duplicate(db, decl, name, &mut out);
    }
    match &parsed.item {
        Item::Import(_) => import_diagnostics(db, decl, &mut out),
        Item::Workload(_) => {
            out.extend(
                crate::workload::size_params(db, decl)
                    .diagnostics
                    .iter()
                    .cloned(),
            );
            out.extend(workload_model(db, decl).diagnostics.iter().cloned());
        }
        Item::Hardware(_) => out.extend(hardware_model(db, decl).diagnostics.iter().cloned()),
        Item::Mapping(_) => out.extend(mapping_model(db, decl).diagnostics.iter().cloned()),
        Item::Op(_) => out.extend(op_diagnostics(db, decl).iter().cloned()),
        Item::Neuron(_) => out.extend(neuron_diagnostics(db, decl).iter().cloned()),
        Item::Error(_) => {}
    }
    out
}

/// Every diagnostic of a file, in source order.
#[salsa::tracked(returns(ref))]
pub fn file_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic<'_>> {
    let mut out = Vec::new();
    for decl in file_decls(db, file) {
        out.extend(decl_diagnostics(db, *decl).iter().cloned());
    }
    out
}

fn syntax_diagnostic<'db>(decl: Decl<'db>, e: &SyntaxError) -> Diagnostic<'db> {
    let loc = Location::new(decl, e.span);
    match &e.kind {
        SyntaxErrorKind::UnexpectedToken { found, expected } => {
            Diagnostic::error("E0001", loc, format!("unexpected {found}"))
                .with_primary(expected_text(expected))
        }
        SyntaxErrorKind::UnexpectedEnd { expected } => {
            Diagnostic::error("E0002", loc, "the declaration ends too early")
                .with_primary(expected_text(expected))
        }
        SyntaxErrorKind::InvalidCharacters => Diagnostic::error(
            "E0003",
            loc,
            "these characters are not part of the language",
        )
        .with_help("names are ASCII letters, digits and `_`"),
        SyntaxErrorKind::UnterminatedComment => {
            Diagnostic::error("E0004", loc, "this block comment is never closed")
                .with_help("close it with `*/`")
        }
        SyntaxErrorKind::UnterminatedString => {
            Diagnostic::error("E0005", loc, "this string is never closed")
                .with_help("close it with `\"` on the same line")
        }
        SyntaxErrorKind::TooDeep { depth } => Diagnostic::error(
            "E0006",
            loc,
            format!(
                "this nests too deeply (over {} brackets, or {} brackets and operators)",
                arch_syntax::MAX_NESTING,
                arch_syntax::MAX_EXPR_DEPTH
            ),
        )
        .with_primary(format!("depth {depth} reached here"))
        .with_help("split the expression into named intermediates"),
        SyntaxErrorKind::NotADeclaration { found } => Diagnostic::error(
            "E0007",
            loc,
            format!("expected a declaration, found {found}"),
        )
        .with_help("a file holds declarations: import, workload, hardware, mapping, op, neuron"),
    }
}

fn expected_text(expected: &[String]) -> String {
    match expected.len() {
        0 => "not expected here".into(),
        1 => format!("expected {}", expected[0]),
        n if n <= 8 => format!("expected one of {}", expected.join(", ")),
        _ => format!("expected one of {}, ...", expected[..8].join(", ")),
    }
}

/// E0102 on every definition of a name after the first.
fn duplicate<'db>(
    db: &'db dyn Db,
    decl: Decl<'db>,
    name: &arch_syntax::ast::Name,
    out: &mut Vec<Diagnostic<'db>>,
) {
    let scope = file_scope(db, decl.file(db));
    let Some(all) = scope.names.get(&name.text) else {
        return;
    };
    let Some(first) = all.first().copied() else {
        return;
    };
    if first == decl || first.file(db) != decl.file(db) {
        return;
    }
    let first_span = parse_decl(db, first)
        .item
        .name()
        .map_or(Span::default(), |n| n.span);
    out.push(
        Diagnostic::error(
            "E0102",
            Location::new(decl, name.span),
            format!("`{}` is defined twice", name.text),
        )
        .with_label(Location::new(first, first_span), "first defined here")
        .with_help("rename one of them"),
    );
}

fn import_diagnostics<'db>(db: &'db dyn Db, decl: Decl<'db>, out: &mut Vec<Diagnostic<'db>>) {
    let Item::Import(import) = &parse_decl(db, decl).item else {
        return;
    };
    let file = decl.file(db);
    if import.module.is_empty() {
        let what = match &import.names {
            ImportNames::Names(n) => n.first().map_or(String::new(), |n| n.text.clone()),
            ImportNames::Glob(_) => String::new(),
        };
        out.push(
            Diagnostic::error("E0103", Location::new(decl, import.span), format!("`import {what}` names no module"))
                .with_help(format!("import names from a module: `import std.nn.relu`, or from a file beside this one: `import {what}.*`")),
        );
        return;
    }
    let module: Vec<&str> = import.module.iter().map(|n| n.text.as_str()).collect();
    let module_span = import
        .module
        .first()
        .map(|f| f.span)
        .unwrap_or_default()
        .cover(import.module.last().map(|n| n.span).unwrap_or_default());
    let Some(module_file) = find_module(db, file, &module) else {
        let shown = module.join(".");
        let known: Vec<&str> = crate::stdlib::MODULES.iter().map(|(m, _, _)| *m).collect();
        let help = did_you_mean(&shown, known.iter().copied()).unwrap_or_else(|| {
            if module[0] == "std" {
                format!("standard modules: {}", known.join(", "))
            } else {
                format!(
                    "`{shown}` would be the file {}.arch beside this one",
                    module.join("/")
                )
            }
        });
        out.push(
            Diagnostic::error(
                "E0103",
                Location::new(decl, module_span),
                format!("no module `{shown}`"),
            )
            .with_help(help),
        );
        return;
    };
    let ImportNames::Names(names) = &import.names else {
        return;
    };
    let exported: Vec<Decl<'db>> = file_decls(db, module_file)
        .iter()
        .copied()
        .filter(|d| !matches!(d.kind(db), "import" | "error" | "comment"))
        .collect();
    let scope = file_scope(db, file);
    for n in names {
        let Some(found) = exported.iter().find(|d| d.name(db) == &n.text) else {
            let help = did_you_mean(&n.text, exported.iter().map(|d| d.name(db).as_str()))
                .unwrap_or_else(|| {
                    format!(
                        "`{}` has: {}",
                        module.join("."),
                        exported
                            .iter()
                            .map(|d| d.name(db).as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            out.push(
                Diagnostic::error(
                    "E0104",
                    Location::new(decl, n.span),
                    format!("`{}` has no declaration `{}`", module.join("."), n.text),
                )
                .with_help(help),
            );
            continue;
        };
        if let Some(first) = scope.get(&n.text) {
            if first != *found {
                let span = parse_decl(db, first)
                    .item
                    .name()
                    .map_or(Span::default(), |x| x.span);
                let (message, label, help) = if first.file(db) == file {
                    (
                        format!("`{}` is imported but also defined in this file", n.text),
                        "also defined here",
                        "rename the local declaration, or drop the import",
                    )
                } else {
                    (
                        format!("`{}` is imported twice, from different modules", n.text),
                        "the other one",
                        "import it from one module only",
                    )
                };
                out.push(Diagnostic {
                    labels: vec![Label {
                        location: Location::new(first, span),
                        message: label.into(),
                    }],
                    ..Diagnostic::error("E0102", Location::new(decl, n.span), message)
                        .with_help(help)
                });
            }
        }
    }
}
