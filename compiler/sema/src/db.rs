//! The salsa database: inputs (the project and its source files), the split
//! of a file into declarations, and per-declaration parsing.

use arch_syntax::{parse_item, split, Parsed};
use std::sync::{Arc, Mutex};

/// Files larger than this are refused with E0008 before they are parsed.
pub const MAX_FILE_BYTES: usize = 8 * 1024 * 1024;

/// E0008's message for the file shown as `name`, `bytes` long, and its help.
pub fn too_large(name: &str, bytes: u64) -> (String, &'static str) {
    (
        format!(
            "{name} is {:.1} MiB; archc reads files up to {} MiB",
            bytes as f64 / 1048576.0,
            MAX_FILE_BYTES >> 20
        ),
        "split the program into files and import them",
    )
}

/// One `.arch` file. `path` is how imports find it: the driver and the
/// language server give absolute paths; stdlib modules are `<std>/hw.arch`.
#[salsa::input(debug)]
pub struct SourceFile {
    #[returns(ref)]
    pub path: String,
    #[returns(ref)]
    pub text: String,
}

/// Everything the front end sees: the files and the `--set` overrides.
#[salsa::input(debug)]
pub struct Project {
    #[returns(ref)]
    pub files: Vec<SourceFile>,
    /// `--set NAME=VALUE`: replaces the default of every size parameter NAME.
    #[returns(ref)]
    pub overrides: Vec<(String, i128)>,
}

#[salsa::db]
pub trait Db: salsa::Database {
    fn project(&self) -> Project;
}

/// One declaration of a file. Its identity is (file, kind, name, ordinal), so
/// editing the text of one declaration keeps every other one, and the queries
/// that read only their own text are not re-run.
#[salsa::tracked(debug)]
pub struct Decl<'db> {
    #[returns(copy)]
    pub file: SourceFile,
    #[returns(copy)]
    pub kind: &'static str,
    #[returns(ref)]
    pub name: String,
    /// Counts earlier declarations with the same kind and name in the file.
    #[returns(copy)]
    pub ordinal: u32,
    #[tracked]
    #[returns(ref)]
    pub text: String,
    /// Byte offset of the declaration in its file.
    #[tracked]
    #[returns(copy)]
    pub offset: u32,
    #[tracked]
    #[returns(ref)]
    pub doc: String,
}

/// The declarations of a file, in order.
#[salsa::tracked(returns(ref))]
pub fn file_decls(db: &dyn Db, file: SourceFile) -> Vec<Decl<'_>> {
    let text = file.text(db);
    if text.len() > MAX_FILE_BYTES {
        return Vec::new();
    }
    let mut seen: std::collections::HashMap<(&'static str, String), u32> =
        std::collections::HashMap::new();
    split(text)
        .into_iter()
        .map(|chunk| {
            let ordinal = seen.entry((chunk.kind, chunk.name.clone())).or_insert(0);
            let decl = Decl::new(
                db,
                file,
                chunk.kind,
                chunk.name,
                *ordinal,
                text[chunk.start..chunk.end].to_string(),
                u32::try_from(chunk.start).unwrap_or(u32::MAX),
                chunk.doc,
            );
            *ordinal += 1;
            decl
        })
        .collect()
}

/// The syntax tree and syntax errors of one declaration.
#[salsa::tracked(returns(ref))]
pub fn parse_decl<'db>(db: &'db dyn Db, decl: Decl<'db>) -> Parsed {
    parse_item(decl.text(db))
}

/// The tree of a declaration that parsed without errors. Semantic checks
/// skip the others: their syntax errors are reported already, and checking a
/// half-read declaration would only add echoes of them.
pub fn clean_item<'db>(db: &'db dyn Db, decl: Decl<'db>) -> Option<&'db arch_syntax::ast::Item> {
    let parsed = parse_decl(db, decl);
    parsed.errors.is_empty().then_some(&parsed.item)
}

/// The one concrete database, used by the driver and the tests. It can record
/// which queries salsa executes, which the incrementality tests read.
#[salsa::db]
#[derive(Clone)]
pub struct RootDatabase {
    storage: salsa::Storage<Self>,
    project: Option<Project>,
    log: Arc<Mutex<Option<Vec<String>>>>,
}

impl Default for RootDatabase {
    fn default() -> Self {
        let log: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
        let sink = log.clone();
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind {
                if let Ok(mut guard) = sink.lock() {
                    if let Some(entries) = guard.as_mut() {
                        entries.push(format!("{database_key:?}"));
                    }
                }
            }
        })));
        let mut db = RootDatabase {
            storage,
            project: None,
            log,
        };
        let std_files = crate::stdlib::std_files(&db);
        let project = Project::builder(std_files, Vec::new())
            .durability(salsa::Durability::MEDIUM)
            .new(&db);
        db.project = Some(project);
        db
    }
}

#[salsa::db]
impl salsa::Database for RootDatabase {}

#[salsa::db]
impl Db for RootDatabase {
    fn project(&self) -> Project {
        self.project
            .expect("RootDatabase::default sets the project")
    }
}

impl RootDatabase {
    /// Starts recording executed queries (`parse_decl(Id(..))`, ...).
    pub fn start_logging(&self) {
        if let Ok(mut guard) = self.log.lock() {
            *guard = Some(Vec::new());
        }
    }

    /// The queries executed since the last call.
    pub fn take_log(&self) -> Vec<String> {
        self.log
            .lock()
            .ok()
            .and_then(|mut g| g.as_mut().map(std::mem::take))
            .unwrap_or_default()
    }

    /// Adds a file, or replaces the text of the file with the same path.
    pub fn set_file(&mut self, path: &str, text: String) -> SourceFile {
        use salsa::Setter;
        let project = self.project();
        if let Some(file) = project
            .files(self)
            .iter()
            .copied()
            .find(|f| f.path(self) == path)
        {
            if file.text(self) != &text {
                file.set_text(self).to(text);
            }
            return file;
        }
        let file = SourceFile::new(self, path.to_string(), text);
        let mut files = project.files(self).clone();
        files.push(file);
        project.set_files(self).to(files);
        file
    }

    pub fn set_overrides(&mut self, overrides: Vec<(String, i128)>) {
        use salsa::Setter;
        let project = self.project();
        if project.overrides(self) != &overrides {
            project.set_overrides(self).to(overrides);
        }
    }

    pub fn file_by_path(&self, path: &str) -> Option<SourceFile> {
        self.project()
            .files(self)
            .iter()
            .copied()
            .find(|f| f.path(self) == path)
    }
}
