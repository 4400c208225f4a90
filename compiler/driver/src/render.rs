//! Diagnostics for people (ariadne) and for programs (JSON).

use arch_sema::db::Db;
use arch_sema::Diagnostic;
use ariadne::{Config, IndexType, Label, Report, ReportKind};
use std::io::Write;

/// One place in one file, ready to show.
#[derive(Debug, Clone)]
pub struct Place {
    /// The path as the user knows it.
    pub file: String,
    pub text: std::sync::Arc<str>,
    pub start: usize,
    pub end: usize,
}

/// A diagnostic with everything resolved, independent of the database.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub code: &'static str,
    pub message: String,
    pub place: Option<Place>,
    pub primary_label: String,
    pub labels: Vec<(Place, String)>,
    pub help: Option<String>,
}

impl Rendered {
    pub fn from_sema(
        db: &dyn Db,
        d: &Diagnostic<'_>,
        display: &dyn Fn(&str) -> String,
    ) -> Rendered {
        Self::from_sema_cached(db, d, display, &mut TextCache::default())
    }

    /// Like [`Rendered::from_sema`], sharing each file's text between the
    /// diagnostics of one run.
    pub fn from_sema_cached(
        db: &dyn Db,
        d: &Diagnostic<'_>,
        display: &dyn Fn(&str) -> String,
        cache: &mut TextCache,
    ) -> Rendered {
        let mut place = |loc: &arch_sema::Location<'_>| {
            let (file, span) = loc.resolve(db);
            let text = cache
                .texts
                .entry(file.path(db).clone())
                .or_insert_with(|| std::sync::Arc::from(file.text(db).as_str()))
                .clone();
            Place {
                file: display(file.path(db)),
                text,
                start: span.start as usize,
                end: span.end as usize,
            }
        };
        Rendered {
            code: d.code,
            message: d.message.clone(),
            place: Some(place(&d.location)),
            primary_label: if d.primary_label.is_empty() {
                arch_sema::CODES
                    .iter()
                    .find(|(c, _)| *c == d.code)
                    .map_or(String::new(), |(_, t)| t.to_string())
            } else {
                d.primary_label.clone()
            },
            labels: d
                .labels
                .iter()
                .map(|l| (place(&l.location), l.message.clone()))
                .collect(),
            help: d.help.clone(),
        }
    }
}

/// File texts already copied out of the database.
#[derive(Default)]
pub struct TextCache {
    texts: std::collections::HashMap<String, std::sync::Arc<str>>,
}

/// Line and column (1-based, columns in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before, |i| &before[i + 1..])
        .chars()
        .count()
        + 1;
    (line, col)
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// A non-empty range on char boundaries, so the caret has something to mark.
fn visible_range(text: &str, start: usize, end: usize) -> std::ops::Range<usize> {
    let start = floor_char(text, start.min(text.len()));
    let mut end = ceil_char(text, end.min(text.len()).max(start));
    if end == start {
        if end < text.len() {
            end = ceil_char(text, end + 1);
        } else if start > 0 {
            return floor_char(text, start - 1)..end;
        }
    }
    start..end
}

/// Lines longer than this are shown as a window around the diagnostic.
const MAX_SHOWN_LINE: usize = 400;

/// The text to show for a range and whether it is a window (a very long
/// line cut around the range) rather than the whole file.
fn window(text: &str, range: std::ops::Range<usize>) -> (String, std::ops::Range<usize>, bool) {
    let line_start = text[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[range.start..]
        .find('\n')
        .map_or(text.len(), |i| range.start + i);
    if line_end - line_start <= MAX_SHOWN_LINE {
        return (text.to_string(), range, false);
    }
    let line_number = text[..line_start].matches('\n').count();
    let from = floor_char(text, range.start.saturating_sub(120).max(line_start));
    let to = ceil_char(text, (range.end.min(line_end) + 120).min(line_end));
    let to = to.max(ceil_char(text, range.start + 1)).min(line_end);
    // Blank lines in front keep ariadne's line numbers right.
    let shown = format!("{}{}", "\n".repeat(line_number), &text[from..to]);
    let start = range.start - from + line_number;
    let end = (range.end.min(to) - from + line_number).max(start);
    (shown, start..end, true)
}

pub struct TextOptions {
    pub color: bool,
}

/// Writes one diagnostic as text.
pub fn write_text(d: &Rendered, opts: &TextOptions, w: &mut dyn Write) {
    let config = Config::default()
        .with_color(opts.color)
        .with_index_type(IndexType::Byte);
    let Some(place) = &d.place else {
        // Same shape as ariadne's reports, without a snippet.
        let _ = writeln!(w, "[{}] Error: {}", d.code, d.message);
        if let Some(help) = &d.help {
            let _ = writeln!(w, "    Help: {help}");
        }
        return;
    };
    let range = visible_range(&place.text, place.start, place.end);
    // Show only the lines that matter: the primary line (windowed when long),
    // plus labels in other places as their own snippets.
    let (shown, shown_range, primary_windowed) = window(&place.text, range);
    let id = place.file.clone();
    let mut report = Report::build(ReportKind::Error, (id.clone(), shown_range.clone()))
        .with_config(config)
        .with_code(d.code)
        .with_message(&d.message);
    let mut primary = Label::new((id.clone(), shown_range))
        .with_order(0)
        .with_message(&d.primary_label);
    if opts.color {
        primary = primary.with_color(ariadne::Color::Red);
    }
    report = report.with_label(primary);
    let mut cache: Vec<(String, ariadne::Source<String>)> =
        vec![(id, ariadne::Source::from(shown))];
    let mut notes = Vec::new();
    for (i, (p, message)) in d.labels.iter().enumerate() {
        let range = visible_range(&p.text, p.start, p.end);
        let (text, r, windowed) = window(&p.text, range);
        if p.file == place.file {
            // The primary's file: a label joins its snippet when both show
            // the whole file, and becomes a note when either is a window.
            if !windowed && !primary_windowed {
                report = report.with_label(
                    Label::new((place.file.clone(), r))
                        .with_message(message)
                        .with_order(1 + i as i32),
                );
            } else {
                let (line, col) = line_col(&p.text, p.start);
                notes.push(format!("{message}: {}:{line}:{col}", p.file));
            }
            continue;
        }
        // Another file gets its own snippet id (marked with zero-width
        // characters, removed from the output).
        let lid = format!("{}{}", p.file, "\u{200b}".repeat(i + 1));
        cache.push((lid.clone(), ariadne::Source::from(text)));
        report = report.with_label(
            Label::new((lid, r))
                .with_message(message)
                .with_order(1 + i as i32),
        );
    }
    for n in notes {
        report = report.with_note(n);
    }
    if let Some(help) = &d.help {
        report = report.with_help(help);
    }
    let mut buf = Vec::new();
    let map: std::collections::HashMap<String, ariadne::Source<String>> =
        cache.into_iter().collect();
    let cache = ariadne::FnCache::new(
        (|id: &String| Err(format!("no source {id}"))) as fn(&String) -> Result<String, String>,
    )
    .with_sources(map);
    if report.finish().write(cache, &mut buf).is_err() {
        let _ = writeln!(w, "error[{}]: {}", d.code, d.message);
        return;
    }
    // Labels with their own snippet ids carry zero-width markers; drop them.
    let text = String::from_utf8_lossy(&buf).replace('\u{200b}', "");
    let _ = w.write_all(text.as_bytes());
}

/// All diagnostics as one JSON document.
pub fn to_json(diags: &[Rendered]) -> serde_json::Value {
    let place = |p: &Place| {
        let (line, column) = line_col(&p.text, p.start);
        let (end_line, end_column) = line_col(&p.text, p.end);
        serde_json::json!({
            "file": p.file,
            "start": p.start,
            "end": p.end,
            "line": line,
            "column": column,
            "end_line": end_line,
            "end_column": end_column,
        })
    };
    let items: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            serde_json::json!({
                "code": d.code,
                "severity": "error",
                "message": d.message,
                "location": d.place.as_ref().map(place),
                "label": d.primary_label,
                "labels": d.labels.iter().map(|(p, m)| serde_json::json!({ "location": place(p), "message": m })).collect::<Vec<_>>(),
                "help": d.help,
            })
        })
        .collect();
    serde_json::json!({ "diagnostics": items, "errors": diags.len() })
}
