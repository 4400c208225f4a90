//! Reading files into the database, with the imports they need.

use arch_sema::db::{RootDatabase, SourceFile, MAX_FILE_BYTES};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file that could not be turned into text.
#[derive(Debug)]
pub enum LoadProblem {
    /// Not found, unreadable, a directory...: a usage error.
    Io(String),
    /// Bytes that are not UTF-8; `valid_up_to` is the offset of the first
    /// bad byte, `lossy` the text with replacement characters.
    InvalidUtf8 { valid_up_to: usize, lossy: String },
    /// Longer than [`MAX_FILE_BYTES`].
    TooLarge { bytes: u64 },
}

/// The files of one command: database path -> path as the user wrote it.
#[derive(Default)]
pub struct Loaded {
    pub display: BTreeMap<String, String>,
}

impl Loaded {
    pub fn display_name(&self, db_path: &str) -> String {
        self.display
            .get(db_path)
            .cloned()
            .unwrap_or_else(|| db_path.to_string())
    }
}

/// The path a file has in the database: absolute, with `/` separators.
pub fn db_path(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| PathBuf::from(path))
    });
    abs.to_string_lossy().replace('\\', "/")
}

pub fn read_text(path: &Path) -> Result<String, LoadProblem> {
    let meta = std::fs::metadata(path)
        .map_err(|e| LoadProblem::Io(format!("cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(LoadProblem::Io(format!(
            "{} is a directory",
            path.display()
        )));
    }
    if meta.len() > MAX_FILE_BYTES as u64 {
        return Err(LoadProblem::TooLarge { bytes: meta.len() });
    }
    let bytes = std::fs::read(path)
        .map_err(|e| LoadProblem::Io(format!("cannot read {}: {e}", path.display())))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid_up_to = e.utf8_error().valid_up_to();
        LoadProblem::InvalidUtf8 {
            valid_up_to,
            lossy: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    })
}

/// Adds the files that `file` imports from beside it, transitively. Missing
/// or unreadable ones are left out: the checker reports the import.
pub fn load_imports(db: &mut RootDatabase, file: SourceFile, loaded: &mut Loaded) {
    let mut queue = vec![file];
    let mut seen = 0usize;
    while let Some(f) = queue.pop() {
        seen += 1;
        if seen > 10_000 {
            break;
        }
        for path in arch_sema::scope::missing_imports(db, f) {
            if let Ok(text) = read_text(Path::new(&path)) {
                let display = pathdiff(&path);
                loaded.display.insert(path.clone(), display);
                let new = db.set_file(&path, text);
                queue.push(new);
            }
        }
    }
}

/// A path relative to the working directory when it is below it.
fn pathdiff(path: &str) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        let cwd = cwd.to_string_lossy().replace('\\', "/");
        if let Some(rest) = path.strip_prefix(&format!("{cwd}/")) {
            return rest.to_string();
        }
    }
    path.to_string()
}
