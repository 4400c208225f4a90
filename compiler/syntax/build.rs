fn main() {
    lalrpop::Configuration::new()
        .use_cargo_dir_conventions()
        .process()
        .expect("grammar.lalrpop must build");
    println!("cargo:rerun-if-changed=src/grammar.lalrpop");
}
