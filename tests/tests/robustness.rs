//! The parser and checker never panic: random bytes, random token soup and
//! mutations of the examples all go through the whole front end and the
//! renderer. (`cargo fuzz run check` in fuzz/ runs the same for longer.)

use arch_tests::{front_end, root};
use proptest::prelude::*;

fn examples() -> Vec<String> {
    arch_tests::arch_files(&root().join("examples"))
        .iter()
        .chain(arch_tests::arch_files(&root().join("stdlib")).iter())
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

const PIECES: &[&str] = &[
    "workload",
    "hardware",
    "mapping",
    "op",
    "neuron",
    "import",
    "std.hw.",
    "input",
    "weight",
    "output",
    "x",
    "y",
    "i",
    "k",
    ":",
    "=",
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ",",
    "+",
    "*",
    "@",
    "sum[k]",
    "max",
    "f32",
    "int8",
    "spike",
    "2",
    "1e30",
    "0",
    "64",
    "GB/s",
    "KiB",
    "ms",
    "tile",
    "order",
    "auto",
    "in",
    "..",
    "pow2",
    "per core",
    "level",
    "@sparse(2:4 along K)",
    "\n",
    " ",
    "/*",
    "\"",
    "//",
    "fire",
    "state",
    "reset",
    "extends",
    "->",
    "<",
    ">",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        front_end(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soup(picks in proptest::collection::vec(0..PIECES.len(), 0..120)) {
        let text: Vec<&str> = picks.iter().map(|i| PIECES[*i]).collect();
        front_end(&text.join(" "));
    }

    #[test]
    fn mutated_examples(which in 0usize..16, edits in proptest::collection::vec((any::<u16>(), 0usize..PIECES.len(), 0u8..3), 1..8)) {
        let all = examples();
        let mut text = all[which % all.len()].clone();
        for (pos, piece, kind) in edits {
            let mut at = (pos as usize) % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match kind {
                0 => text.insert_str(at, PIECES[piece]),
                1 => {
                    let mut end = (at + 1 + piece).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let mut end = (at + 3).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, PIECES[piece]);
                }
            }
        }
        front_end(&text);
    }
}
