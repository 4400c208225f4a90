//! The protocol side: document state, the salsa database, snapshots.
//!
//! Edits are applied to the one database under a short lock, before any
//! `.await`, so they take effect in arrival order. Every request and every
//! diagnostics pass runs on a snapshot (a clone of the database) on a
//! blocking thread; an edit cancels the snapshots in flight (salsa unwinds
//! them with `Cancelled`, and the request answers "content modified" or the
//! pass is dropped). The search behind the "pin" action runs on owned models,
//! never on a snapshot, so no edit waits for it.

use crate::analysis::{self, ItemKind, Spot};
use crate::text::{apply_change, LineIndex};
use arch_sema::db::{RootDatabase, SourceFile};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer, LspService, Server};

/// How long the "pin" code action lets the search run.
const PIN_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

struct Doc {
    uri: Uri,
    version: i32,
    text: String,
    index: Arc<LineIndex>,
}

#[derive(Default)]
struct State {
    db: RootDatabase,
    /// Open documents by database path.
    docs: HashMap<String, Doc>,
}

pub struct Backend {
    client: Client,
    state: Arc<Mutex<State>>,
}

/// The database path of a document: its file path, or the URI itself for
/// documents that are not files (unsaved buffers).
fn path_of(uri: &Uri) -> String {
    if uri.scheme().as_str() == "file" {
        if let Some(p) = uri.to_file_path() {
            return p.to_string_lossy().replace('\\', "/");
        }
    }
    uri.as_str().to_string()
}

/// The URI of a database path; standard library modules are written once
/// to a directory under the system's temporary directory so that editors
/// can open them.
fn uri_of(path: &str) -> Option<Uri> {
    if let Some(rest) = path.strip_prefix("<std>/") {
        let (_, _, text) = arch_sema::stdlib::MODULES
            .iter()
            .find(|(_, p, _)| *p == path)?;
        let dir = std::env::temp_dir().join(format!("archc-std-{}", env!("CARGO_PKG_VERSION")));
        let file = dir.join(rest);
        if std::fs::read_to_string(&file).ok().as_deref() != Some(*text) {
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::write(&file, text).ok()?;
        }
        return Uri::from_file_path(file);
    }
    if path.starts_with('/') {
        return Uri::from_file_path(path);
    }
    path.parse().ok()
}

fn content_modified() -> Error {
    Error {
        code: ErrorCode::ServerError(-32801),
        message: "content modified".into(),
        data: None,
    }
}

impl Backend {
    /// Runs `f` on a snapshot on a blocking thread. `None` when an edit
    /// cancelled it (or it failed: the server stays up either way).
    async fn on_snapshot<T, F>(&self, f: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce(&RootDatabase) -> T + Send + 'static,
    {
        let db = self.lock().db.clone();
        tokio::task::spawn_blocking(move || {
            let r = salsa::Cancelled::catch(std::panic::AssertUnwindSafe(|| f(&db)));
            drop(db);
            r.ok()
        })
        .await
        .ok()
        .flatten()
    }

    /// Runs `f` on a snapshot with the open document `uri`: its file, text
    /// and line index. `Ok(None)` when the document is not open (or `f` has
    /// no answer), "content modified" when an edit cancelled the snapshot.
    async fn on_document<T, F>(&self, uri: &Uri, f: F) -> Result<Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(&RootDatabase, SourceFile, &str, &LineIndex) -> Option<T> + Send + 'static,
    {
        let Some((path, ix, text)) = self.doc(uri) else {
            return Ok(None);
        };
        self.on_snapshot(move |db| {
            let file = db.file_by_path(&path)?;
            f(db, file, &text, &ix)
        })
        .await
        .ok_or_else(content_modified)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The file and line index of an open document.
    fn doc(&self, uri: &Uri) -> Option<(String, Arc<LineIndex>, String)> {
        let st = self.lock();
        let path = path_of(uri);
        let d = st.docs.get(&path)?;
        Some((path, d.index.clone(), d.text.clone()))
    }

    /// Reads the sibling files that open documents import and the database
    /// lacks (transitively), so names resolve as `archc check` resolves them.
    fn load_imports(st: &mut State, path: &str) {
        let mut queue: Vec<SourceFile> = st.db.file_by_path(path).into_iter().collect();
        let mut steps = 0;
        while let Some(f) = queue.pop() {
            steps += 1;
            if steps > 1000 {
                break;
            }
            for w in arch_sema::scope::missing_imports(&st.db, f) {
                let Ok(bytes) = std::fs::read(&w) else {
                    continue;
                };
                if bytes.len() > arch_sema::db::MAX_FILE_BYTES {
                    continue;
                }
                if let Ok(text) = String::from_utf8(bytes) {
                    queue.push(st.db.set_file(&w, text));
                }
            }
        }
    }

    /// Computes and publishes the diagnostics of every open document.
    async fn publish(&self) {
        let docs: Vec<(String, Uri, i32)> = {
            let st = self.lock();
            st.docs
                .iter()
                .map(|(p, d)| (p.clone(), d.uri.clone(), d.version))
                .collect()
        };
        let paths: Vec<String> = docs.iter().map(|(p, _, _)| p.clone()).collect();
        let Some(all) = self
            .on_snapshot(move |db| {
                paths
                    .iter()
                    .map(|p| diagnostics_of(db, p))
                    .collect::<Vec<_>>()
            })
            .await
        else {
            return; // a newer edit cancelled this pass; its own pass follows
        };
        for ((path, uri, version), diags) in docs.into_iter().zip(all) {
            // Only if the document has not changed since.
            let current = self.lock().docs.get(&path).map(|d| d.version);
            if current == Some(version) {
                self.client
                    .publish_diagnostics(uri, diags, Some(version))
                    .await;
            }
        }
    }
}

/// LSP locations of database ranges, one line index per file.
struct Locator<'a> {
    db: &'a RootDatabase,
    indexes: HashMap<String, LineIndex>,
}

impl<'a> Locator<'a> {
    fn new(db: &'a RootDatabase) -> Self {
        Locator {
            db,
            indexes: HashMap::new(),
        }
    }

    fn range(&mut self, file: SourceFile, start: usize, end: usize) -> Range {
        let (p, t) = (file.path(self.db), file.text(self.db));
        let ix = self
            .indexes
            .entry(p.clone())
            .or_insert_with(|| LineIndex::new(t));
        ix.range(t, start, end)
    }

    fn location(&mut self, file: SourceFile, start: usize, end: usize) -> Option<Location> {
        let uri = uri_of(file.path(self.db))?;
        Some(Location::new(uri, self.range(file, start, end)))
    }

    fn spot(&mut self, s: &Spot) -> Option<Location> {
        let f = self.db.file_by_path(&s.path)?;
        self.location(f, s.start, s.end)
    }

    fn sema(&mut self, loc: &arch_sema::Location<'_>) -> Option<Location> {
        let (f, span) = loc.resolve(self.db);
        self.location(f, span.start as usize, span.end as usize)
    }
}

/// The diagnostics of the file at `path`, as `archc check` reports them:
/// same codes, same messages; labels and help become related information.
fn diagnostics_of(db: &RootDatabase, path: &str) -> Vec<Diagnostic> {
    let Some(file) = db.file_by_path(path) else {
        return Vec::new();
    };
    let text = file.text(db);
    if text.len() > arch_sema::db::MAX_FILE_BYTES {
        let (message, help) = arch_sema::db::too_large(path, text.len() as u64);
        let related = uri_of(path).map(|uri| {
            vec![DiagnosticRelatedInformation {
                location: Location::new(uri, Range::default()),
                message: format!("help: {help}"),
            }]
        });
        return vec![Diagnostic {
            range: Range::default(),
            severity: Some(DiagnosticSeverity::ERROR),
            code: Some(NumberOrString::String("E0008".into())),
            source: Some("archc".into()),
            message,
            related_information: related,
            ..Default::default()
        }];
    }
    let mut at = Locator::new(db);
    arch_sema::file_diagnostics(db, file)
        .iter()
        .map(|d| {
            let mut related = Vec::new();
            let mut relate = |loc: Option<Location>, message: String| {
                if let Some(location) = loc {
                    related.push(DiagnosticRelatedInformation { location, message });
                }
            };
            if !d.primary_label.is_empty() {
                relate(at.sema(&d.location), d.primary_label.clone());
            }
            for l in &d.labels {
                relate(at.sema(&l.location), l.message.clone());
            }
            if let Some(h) = &d.help {
                relate(at.sema(&d.location), format!("help: {h}"));
            }
            let (_, span) = d.location.resolve(db);
            Diagnostic {
                range: at.range(file, span.start as usize, span.end as usize),
                severity: Some(DiagnosticSeverity::ERROR),
                code: Some(NumberOrString::String(d.code.to_string())),
                source: Some("archc".into()),
                message: d.message.clone(),
                related_information: (!related.is_empty()).then_some(related),
                ..Default::default()
            }
        })
        .collect()
}

fn symbol_kind(kind: &str) -> SymbolKind {
    match kind {
        "workload" => SymbolKind::FUNCTION,
        "hardware" => SymbolKind::CLASS,
        "mapping" => SymbolKind::NAMESPACE,
        "op" | "neuron" => SymbolKind::OPERATOR,
        "tensor" => SymbolKind::VARIABLE,
        _ => SymbolKind::FIELD,
    }
}

#[allow(deprecated)] // `DocumentSymbol::deprecated` must still be written
fn document_symbol(text: &str, ix: &LineIndex, s: analysis::Symbol) -> DocumentSymbol {
    DocumentSymbol {
        name: s.name,
        detail: (!s.detail.is_empty()).then_some(s.detail),
        kind: symbol_kind(s.kind),
        tags: None,
        deprecated: None,
        range: ix.range(text, s.start, s.end),
        selection_range: ix.range(text, s.name_start, s.name_end),
        children: Some(
            s.children
                .into_iter()
                .map(|c| document_symbol(text, ix, c))
                .collect(),
        ),
    }
}

fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..Default::default()
            },
        )),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        definition_provider: Some(OneOf::Left(true)),
        references_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), " ".into(), "{".into()]),
            ..Default::default()
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        document_formatting_provider: Some(OneOf::Left(true)),
        inlay_hint_provider: Some(OneOf::Left(true)),
        code_action_provider: Some(CodeActionProviderCapability::Simple(true)),
        semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(
            SemanticTokensOptions {
                legend: SemanticTokensLegend {
                    token_types: analysis::TOKEN_TYPES
                        .iter()
                        .map(|t| SemanticTokenType::new(t))
                        .collect(),
                    token_modifiers: Vec::new(),
                },
                full: Some(SemanticTokensFullOptions::Bool(true)),
                range: None,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, _: InitializeParams) -> Result<InitializeResult> {
        Ok(InitializeResult {
            capabilities: capabilities(),
            server_info: Some(ServerInfo {
                name: "archc".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            ..Default::default()
        })
    }

    async fn shutdown(&self) -> Result<()> {
        Ok(())
    }

    async fn did_open(&self, p: DidOpenTextDocumentParams) {
        let path = path_of(&p.text_document.uri);
        {
            let mut st = self.lock();
            let text = p.text_document.text;
            st.db.set_file(&path, text.clone());
            let index = Arc::new(LineIndex::new(&text));
            st.docs.insert(
                path.clone(),
                Doc {
                    uri: p.text_document.uri,
                    version: p.text_document.version,
                    text,
                    index,
                },
            );
            Self::load_imports(&mut st, &path);
        }
        self.publish().await;
    }

    async fn did_change(&self, p: DidChangeTextDocumentParams) {
        let path = path_of(&p.text_document.uri);
        {
            let mut st = self.lock();
            let Some(doc) = st.docs.get_mut(&path) else {
                return;
            };
            let mut index = (*doc.index).clone();
            for c in p.content_changes {
                index = apply_change(&mut doc.text, &index, c.range, &c.text);
            }
            doc.index = Arc::new(index);
            doc.version = p.text_document.version;
            let text = doc.text.clone();
            // Cancels the snapshots in flight.
            st.db.set_file(&path, text);
            Self::load_imports(&mut st, &path);
        }
        self.publish().await;
    }

    async fn did_close(&self, p: DidCloseTextDocumentParams) {
        let path = path_of(&p.text_document.uri);
        self.lock().docs.remove(&path);
        self.client
            .publish_diagnostics(p.text_document.uri, Vec::new(), None)
            .await;
    }

    async fn hover(&self, p: HoverParams) -> Result<Option<Hover>> {
        let pos = p.text_document_position_params;
        let r = self
            .on_document(&pos.text_document.uri, move |db, f, text, ix| {
                analysis::hover(db, f, ix.offset(text, pos.position))
            })
            .await?;
        Ok(r.map(|md| Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: md,
            }),
            range: None,
        }))
    }

    async fn goto_definition(
        &self,
        p: GotoDefinitionParams,
    ) -> Result<Option<GotoDefinitionResponse>> {
        let pos = p.text_document_position_params;
        let r = self
            .on_document(&pos.text_document.uri, move |db, f, text, ix| {
                let spot = analysis::definition(db, f, ix.offset(text, pos.position))?;
                Locator::new(db).spot(&spot)
            })
            .await?;
        Ok(r.map(GotoDefinitionResponse::Scalar))
    }

    async fn references(&self, p: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let pos = p.text_document_position;
        let open: Vec<String> = self.lock().docs.keys().cloned().collect();
        let include = p.context.include_declaration;
        self.on_document(&pos.text_document.uri, move |db, f, text, ix| {
            let mut files: Vec<SourceFile> = Vec::new();
            for o in &open {
                if let Some(of) = db.file_by_path(o) {
                    files.extend(analysis::imported_files(db, of));
                }
            }
            let offset = ix.offset(text, pos.position);
            let spots = analysis::references(db, f, offset, &files, include);
            let mut at = Locator::new(db);
            Some(spots.iter().filter_map(|s| at.spot(s)).collect())
        })
        .await
    }

    async fn completion(&self, p: CompletionParams) -> Result<Option<CompletionResponse>> {
        let pos = p.text_document_position;
        let r = self
            .on_document(&pos.text_document.uri, move |db, f, text, ix| {
                Some(analysis::completion(db, f, ix.offset(text, pos.position)))
            })
            .await?;
        Ok(r.map(|items| {
            CompletionResponse::Array(
                items
                    .into_iter()
                    .map(|c| CompletionItem {
                        kind: Some(match c.kind {
                            ItemKind::Keyword => CompletionItemKind::KEYWORD,
                            ItemKind::Declaration("hardware") => CompletionItemKind::CLASS,
                            ItemKind::Declaration("mapping") => CompletionItemKind::MODULE,
                            ItemKind::Declaration(_) => CompletionItemKind::FUNCTION,
                            ItemKind::Tensor => CompletionItemKind::VARIABLE,
                            ItemKind::Field => CompletionItemKind::FIELD,
                            ItemKind::Knob => CompletionItemKind::PROPERTY,
                            ItemKind::Value => CompletionItemKind::VALUE,
                            ItemKind::Unit => CompletionItemKind::UNIT,
                            ItemKind::Type => CompletionItemKind::TYPE_PARAMETER,
                        }),
                        detail: (!c.detail.is_empty()).then_some(c.detail),
                        label: c.label,
                        ..Default::default()
                    })
                    .collect(),
            )
        }))
    }

    async fn document_symbol(
        &self,
        p: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let r = self
            .on_document(&p.text_document.uri, |db, f, text, ix| {
                Some(
                    analysis::symbols(db, f)
                        .into_iter()
                        .map(|s| document_symbol(text, ix, s))
                        .collect::<Vec<_>>(),
                )
            })
            .await?;
        Ok(r.map(DocumentSymbolResponse::Nested))
    }

    async fn semantic_tokens_full(
        &self,
        p: SemanticTokensParams,
    ) -> Result<Option<SemanticTokensResult>> {
        let r = self
            .on_document(&p.text_document.uri, |db, f, text, ix| {
                Some(encode_tokens(text, ix, &analysis::tokens(db, f)))
            })
            .await?;
        Ok(r.map(|data| {
            SemanticTokensResult::Tokens(SemanticTokens {
                result_id: None,
                data,
            })
        }))
    }

    async fn formatting(&self, p: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        let Some((_, ix, text)) = self.doc(&p.text_document.uri) else {
            return Ok(None);
        };
        // The formatter leaves files with syntax errors as they are.
        let Some(new) = arch_syntax::format::format(&text) else {
            return Ok(None);
        };
        if new == text {
            return Ok(Some(Vec::new()));
        }
        Ok(Some(vec![TextEdit {
            range: ix.range(&text, 0, text.len()),
            new_text: new,
        }]))
    }

    async fn inlay_hint(&self, p: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        self.on_document(&p.text_document.uri, |db, f, text, ix| {
            Some(
                analysis::inlay_hints(db, f)
                    .into_iter()
                    .map(|h| InlayHint {
                        position: ix.position(text, h.at),
                        label: InlayHintLabel::String(h.label),
                        kind: None,
                        text_edits: None,
                        tooltip: None,
                        padding_left: Some(true),
                        padding_right: None,
                        data: None,
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .await
    }

    async fn code_action(&self, p: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = p.text_document.uri;
        let start = p.range.start;
        let found = self
            .on_document(&uri, move |db, f, text, ix| {
                let req = analysis::pin_request(db, f, ix.offset(text, start))?;
                let knob = req.knob.as_ref().map(|(_, a, b)| ix.range(text, *a, *b));
                Some((ix.range(text, req.start, req.end), knob, req))
            })
            .await?;
        let Some((range, knob_range, req)) = found else {
            return Ok(Some(Vec::new()));
        };
        // The search runs on owned models: edits never wait for it.
        let name = req.name.clone();
        let knob = req.knob.clone();
        let pinned = tokio::task::spawn_blocking(move || analysis::pinned_text(&req, PIN_BUDGET))
            .await
            .map_err(|_| Error::internal_error())?;
        let Ok(pinned) = pinned else {
            return Ok(Some(Vec::new()));
        };
        let action = |title: String, range: Range, new_text: String| {
            CodeActionOrCommand::CodeAction(CodeAction {
                title,
                kind: Some(CodeActionKind::REFACTOR_REWRITE),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(
                        uri.clone(),
                        vec![TextEdit { range, new_text }],
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        let mut actions = Vec::new();
        if let (Some((k, _, _)), Some(value), Some(r)) = (knob, pinned.knob, knob_range) {
            let what = match k {
                analysis::OpenKnob::Tile { tensor, level, dim } => {
                    format!("the tile of `{dim}` of `{tensor}` at `{level}`")
                }
                analysis::OpenKnob::Precision { tensor } => format!("the precision of `{tensor}`"),
            };
            actions.push(action(
                format!("Pin {what} to its tuned value {value}"),
                r,
                value,
            ));
        }
        actions.push(action(
            format!("Pin every `auto` knob of `{name}` to its tuned value"),
            range,
            pinned.mapping,
        ));
        Ok(Some(actions))
    }
}

/// LSP's relative encoding of `(start, end, type)` tokens; tokens that
/// span lines (block comments) are split per line.
fn encode_tokens(text: &str, ix: &LineIndex, toks: &[(usize, usize, u32)]) -> Vec<SemanticToken> {
    let mut out = Vec::with_capacity(toks.len());
    let (mut prev_line, mut prev_col) = (0u32, 0u32);
    for &(start, end, ty) in toks {
        let mut s = start;
        while s < end {
            let line_end = text[s..end].find('\n').map_or(end, |i| s + i);
            let a = ix.position(text, s);
            let b = ix.position(text, line_end);
            if b.character > a.character {
                let delta_line = a.line - prev_line;
                let delta_start = if delta_line == 0 {
                    a.character - prev_col
                } else {
                    a.character
                };
                out.push(SemanticToken {
                    delta_line,
                    delta_start,
                    length: b.character - a.character,
                    token_type: ty,
                    token_modifiers_bitset: 0,
                });
                prev_line = a.line;
                prev_col = a.character;
            }
            s = line_end + 1;
        }
    }
    out
}

/// Serves the language server on stdin/stdout until the client exits.
pub fn serve_stdio() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Frames pass through the guard (crate::framing), which answers
        // malformed messages itself so that the server keeps serving.
        let (server_in, guard_out) = tokio::io::duplex(1 << 16);
        let (server_out, merged_in) = tokio::io::duplex(1 << 16);
        let (outgoing, queue) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(crate::framing::guard_input(
            tokio::io::stdin(),
            guard_out,
            outgoing.clone(),
        ));
        let reader = tokio::spawn(crate::framing::server_output(merged_in, outgoing));
        let writer = tokio::spawn(crate::framing::write_output(tokio::io::stdout(), queue));
        let (service, socket) = LspService::new(|client| Backend {
            client,
            state: Arc::new(Mutex::new(State::default())),
        });
        Server::new(server_in, server_out, socket)
            .serve(service)
            .await;
        let _ = reader.await;
        let _ = writer.await;
    });
    // The task reading stdin may still wait for input the client never
    // sends after `exit`: do not wait for it.
    runtime.shutdown_background();
    Ok(())
}
