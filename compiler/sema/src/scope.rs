//! Names visible in a file: its own declarations, then imported ones.

use crate::db::{file_decls, parse_decl, Db, Decl, SourceFile};
use crate::stdlib::module_path;
use arch_syntax::ast::{ImportNames, Item};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, salsa::SalsaValue)]
pub struct Scope<'db> {
    /// Every declaration visible under each name, own ones first. More than
    /// one entry is a duplicate, reported on the later declarations.
    pub names: BTreeMap<String, Vec<Decl<'db>>>,
    /// Names an import asked for but could not provide (reported there):
    /// uses of them report nothing more.
    pub unresolved: std::collections::BTreeSet<String>,
}

impl<'db> Scope<'db> {
    pub fn get(&self, name: &str) -> Option<Decl<'db>> {
        self.names.get(name).and_then(|v| v.first().copied())
    }

    /// Names of one kind of declaration, for "did you mean".
    pub fn names_of_kind<'a>(
        &'a self,
        db: &'a dyn Db,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.names
            .iter()
            .filter(move |(_, d)| d.first().is_some_and(|d| d.kind(db) == kind))
            .map(|(n, _)| n.as_str())
    }
}

/// The file that an import's module names, if the project has it.
pub fn find_module(db: &dyn Db, from: SourceFile, module: &[&str]) -> Option<SourceFile> {
    let path = module_path(from.path(db), module);
    db.project()
        .files(db)
        .iter()
        .copied()
        .find(|f| f.path(db) == &path)
}

/// The files that `file` imports from the project (not `std`) and the
/// project does not hold yet, each once: what a loader reads from disk next
/// (the driver for `archc check`, the language server for open documents).
pub fn missing_imports(db: &dyn Db, file: SourceFile) -> Vec<String> {
    let from = file.path(db);
    let mut out: Vec<String> = Vec::new();
    for decl in file_decls(db, file) {
        if decl.kind(db) != "import" {
            continue;
        }
        let Item::Import(import) = &parse_decl(db, *decl).item else {
            continue;
        };
        let module: Vec<&str> = import.module.iter().map(|n| n.text.as_str()).collect();
        if module.is_empty() || module[0] == "std" {
            continue;
        }
        let path = module_path(from, &module);
        let known = db.project().files(db).iter().any(|f| f.path(db) == &path);
        if !known && !out.contains(&path) {
            out.push(path);
        }
    }
    out
}

/// The names visible in `file`. Reads only the declarations' identities and
/// the imports' trees, so editing the body of a workload does not change it.
#[salsa::tracked(returns(ref))]
pub fn file_scope(db: &dyn Db, file: SourceFile) -> Scope<'_> {
    let mut names: BTreeMap<String, Vec<Decl<'_>>> = BTreeMap::new();
    let mut unresolved = std::collections::BTreeSet::new();
    let decls = file_decls(db, file);
    for decl in decls {
        if matches!(decl.kind(db), "import" | "error" | "comment") || decl.name(db).is_empty() {
            continue;
        }
        names.entry(decl.name(db).clone()).or_default().push(*decl);
    }
    for decl in decls.iter().filter(|d| d.kind(db) == "import") {
        let Item::Import(import) = &parse_decl(db, *decl).item else {
            continue;
        };
        let module: Vec<&str> = import.module.iter().map(|n| n.text.as_str()).collect();
        if module.is_empty() {
            continue;
        }
        let wanted: Vec<&str> = match &import.names {
            ImportNames::Names(names) => names.iter().map(|n| n.text.as_str()).collect(),
            ImportNames::Glob(_) => Vec::new(),
        };
        let Some(module_file) = find_module(db, file, &module) else {
            unresolved.extend(wanted.iter().map(|w| w.to_string()));
            continue;
        };
        let exported = file_decls(db, module_file);
        for w in &wanted {
            if !exported.iter().any(|d| d.name(db) == *w) {
                unresolved.insert(w.to_string());
            }
        }
        for d in exported {
            if matches!(d.kind(db), "import" | "error" | "comment") {
                continue;
            }
            let name = d.name(db);
            let glob = matches!(import.names, ImportNames::Glob(_));
            if glob || wanted.contains(&name.as_str()) {
                let entry = names.entry(name.clone()).or_default();
                if !entry.contains(d) {
                    entry.push(*d);
                }
            }
        }
    }
    Scope { names, unresolved }
}

/// The standard module that declares `name`, for "import it" help.
pub fn std_module_of(db: &dyn Db, name: &str) -> Option<&'static str> {
    for (module, path, _) in crate::stdlib::MODULES {
        let Some(file) = db
            .project()
            .files(db)
            .iter()
            .copied()
            .find(|f| f.path(db) == path)
        else {
            continue;
        };
        if file_decls(db, file).iter().any(|d| d.name(db) == name) {
            return Some(module);
        }
    }
    None
}
