//! The standard library, embedded in the binary: `std.hw` (hardware) and
//! `std.nn` (ops). Its files get high durability: edits to user files never
//! make salsa re-validate them.

use crate::db::SourceFile;

/// `(module, path, text)` of every stdlib module.
pub const MODULES: &[(&str, &str, &str)] = &[
    (
        "std.hw",
        "<std>/hw.arch",
        include_str!("../../../stdlib/hw.arch"),
    ),
    (
        "std.nn",
        "<std>/nn.arch",
        include_str!("../../../stdlib/nn.arch"),
    ),
];

pub fn std_files(db: &dyn salsa::Database) -> Vec<SourceFile> {
    MODULES
        .iter()
        .map(|(_, path, text)| {
            SourceFile::builder(path.to_string(), text.to_string())
                .durability(salsa::Durability::HIGH)
                .new(db)
        })
        .collect()
}

/// The path of a module: `std.hw` is `<std>/hw.arch`; `layers` imported from
/// `/a/model.arch` is `/a/layers.arch`, and `sub.layers` is `/a/sub/layers.arch`.
pub fn module_path(from_path: &str, module: &[&str]) -> String {
    if module.first() == Some(&"std") {
        return format!("<std>/{}.arch", module[1..].join("/"));
    }
    let dir = match from_path.rfind('/') {
        Some(i) => &from_path[..i],
        None => ".",
    };
    format!("{}/{}.arch", dir, module.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_paths() {
        assert_eq!(module_path("/a/b.arch", &["std", "hw"]), "<std>/hw.arch");
        assert_eq!(module_path("/a/b.arch", &["layers"]), "/a/layers.arch");
        assert_eq!(
            module_path("/a/b.arch", &["sub", "layers"]),
            "/a/sub/layers.arch"
        );
        assert_eq!(module_path("b.arch", &["layers"]), "./layers.arch");
    }
}
