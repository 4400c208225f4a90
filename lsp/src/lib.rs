//! The archc language server (`archc lsp`): built on the salsa front end
//! and the cost model only, never on MLIR or LLVM, so it starts and answers
//! fast. `server` speaks the protocol; `analysis` answers from a database
//! snapshot; `text` maps LSP positions to byte offsets.

pub mod analysis;
pub mod framing;
mod server;
pub mod text;

pub use server::serve_stdio;
