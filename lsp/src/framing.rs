//! The guard between stdio and the protocol library: it reads each framed
//! message (`Content-Length: N` headers, a blank line, N bytes of body) and
//! passes on only bodies that are JSON-RPC messages. A body that is not JSON
//! is answered with the protocol's parse error (-32700), one that is JSON but
//! not a message with an invalid-request error (-32600), and serving goes on.
//! (The library's own decoder ends its input stream after the first bad
//! body, and the server with it.)
//!
//! **Invariant:** what reaches the server and what reaches stdout are whole
//! frames; answers to bad messages are written between the server's frames,
//! never inside one.

use serde_json::{json, Value};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::sync::mpsc;

/// Header lines longer than this are not headers.
const MAX_HEADER_LINE: usize = 8 * 1024;
/// Bodies larger than this are refused (their bytes are skipped).
pub const MAX_BODY: usize = 256 * 1024 * 1024;

/// One message read from a stream.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A body, as the headers announced it.
    Body(Vec<u8>),
    /// Headers without a usable `Content-Length`, or a body over the limit:
    /// what was wrong. The stream is positioned after the bad part.
    BadHeader(String),
}

/// Reads the next frame; `None` at the end of the stream.
pub async fn read_frame<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut saw_header = false;
    loop {
        let mut line = Vec::new();
        let n = (&mut *r)
            .take(MAX_HEADER_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(if saw_header {
                Some(Frame::BadHeader("the stream ends inside a header".into()))
            } else {
                None
            });
        }
        if line.len() > MAX_HEADER_LINE && !line.ends_with(b"\n") {
            // Skip the rest of this overlong line.
            let mut rest = Vec::new();
            r.read_until(b'\n', &mut rest).await?;
            return Ok(Some(Frame::BadHeader("a header line is too long".into())));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if !saw_header {
                continue; // blank lines between messages
            }
            break;
        }
        saw_header = true;
        let Some((name, value)) = text.split_once(':') else {
            length = Some(Err(format!("`{}` is not a header", clip(text))));
            continue;
        };
        if name.trim().eq_ignore_ascii_case("content-length") {
            length =
                Some(value.trim().parse::<usize>().map_err(|_| {
                    format!("Content-Length `{}` is not a number", clip(value.trim()))
                }));
        }
    }
    let length = match length {
        Some(Ok(n)) => n,
        Some(Err(why)) => return Ok(Some(Frame::BadHeader(why))),
        None => return Ok(Some(Frame::BadHeader("no Content-Length header".into()))),
    };
    if length > MAX_BODY {
        let skipped =
            tokio::io::copy(&mut (&mut *r).take(length as u64), &mut tokio::io::sink()).await?;
        let why = if skipped < length as u64 {
            "the stream ends inside a body".to_string()
        } else {
            format!("a body of {length} bytes is over the limit of {MAX_BODY}")
        };
        return Ok(Some(Frame::BadHeader(why)));
    }
    let mut body = vec![0; length];
    match r.read_exact(&mut body).await {
        Ok(_) => Ok(Some(Frame::Body(body))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Some(Frame::BadHeader(
            "the stream ends inside a body".into(),
        ))),
        Err(e) => Err(e),
    }
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, body: &[u8]) -> std::io::Result<()> {
    let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    frame.extend_from_slice(body);
    w.write_all(&frame).await?;
    w.flush().await
}

/// The error response for a body that must not reach the server, or None
/// for one that may.
pub fn refusal(body: &[u8]) -> Option<Value> {
    let error = |code: i64, message: String, id: Value| json!({ "jsonrpc": "2.0", "error": { "code": code, "message": message }, "id": id });
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(error(-32700, format!("Parse error: {e}"), Value::Null)),
    };
    let Some(object) = value.as_object() else {
        return Some(error(
            -32600,
            "Invalid request: a message is a JSON object".into(),
            Value::Null,
        ));
    };
    let id = object.get("id");
    let id_ok = id.is_none_or(|id| id.is_null() || id.is_string() || id.is_i64() || id.is_u64());
    let reply_id = id.filter(|_| id_ok).cloned().unwrap_or(Value::Null);
    if object.get("jsonrpc") != Some(&Value::from("2.0")) {
        return Some(error(
            -32600,
            "Invalid request: `jsonrpc` must be \"2.0\"".into(),
            reply_id,
        ));
    }
    if !id_ok {
        return Some(error(
            -32600,
            "Invalid request: `id` must be a number, a string or null".into(),
            Value::Null,
        ));
    }
    let method = object.get("method");
    let is_request = method.is_some_and(Value::is_string)
        && object
            .get("params")
            .is_none_or(|p| p.is_object() || p.is_array() || p.is_null());
    let is_response = method.is_none()
        && id.is_some()
        && (object.contains_key("result") || object.get("error").is_some_and(is_error_object));
    if is_request || is_response {
        None
    } else {
        Some(error(
            -32600,
            "Invalid request: neither a request, a notification nor a response".into(),
            reply_id,
        ))
    }
}

fn is_error_object(e: &Value) -> bool {
    e.get("code").is_some_and(|c| c.is_i64()) && e.get("message").is_some_and(Value::is_string)
}

/// What goes to stdout: a body to frame, or the end (the server stopped).
pub enum Outgoing {
    Body(Vec<u8>),
    End,
}

/// Copies frames from `input` to `to_server`, answering bad ones through
/// `outgoing`; ends at the end of `input` (closing `to_server`).
pub async fn guard_input<R, W>(
    input: R,
    mut to_server: W,
    outgoing: mpsc::UnboundedSender<Outgoing>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut input = tokio::io::BufReader::new(input);
    while let Ok(Some(frame)) = read_frame(&mut input).await {
        let refused = match frame {
            Frame::Body(body) => match refusal(&body) {
                None => {
                    if write_frame(&mut to_server, &body).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(answer) => answer,
            },
            Frame::BadHeader(why) => json!({
                "jsonrpc": "2.0",
                "error": { "code": -32700, "message": format!("Parse error: {why}") },
                "id": null
            }),
        };
        if outgoing
            .send(Outgoing::Body(refused.to_string().into_bytes()))
            .is_err()
        {
            return;
        }
    }
    let _ = to_server.shutdown().await;
}

/// Reads the server's frames into `outgoing`, then `End`.
pub async fn server_output<R: AsyncRead + Unpin>(
    from_server: R,
    outgoing: mpsc::UnboundedSender<Outgoing>,
) {
    let mut from_server = tokio::io::BufReader::new(from_server);
    loop {
        match read_frame(&mut from_server).await {
            Ok(Some(Frame::Body(body))) => {
                if outgoing.send(Outgoing::Body(body)).is_err() {
                    return;
                }
            }
            Ok(Some(Frame::BadHeader(_))) => continue,
            Ok(None) | Err(_) => break,
        }
    }
    let _ = outgoing.send(Outgoing::End);
}

/// Writes every outgoing body as one frame, in the order they came, until
/// `End` (whole frames only: each comes from one channel).
pub async fn write_output<W: AsyncWrite + Unpin>(
    mut output: W,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(Outgoing::Body(body)) = outgoing.recv().await {
        if write_frame(&mut output, &body).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut r = tokio::io::BufReader::new(bytes);
            let mut out = Vec::new();
            while let Some(f) = read_frame(&mut r).await.expect("read") {
                out.push(f);
            }
            out
        })
    }

    #[test]
    fn reads_frames_and_reports_bad_headers() {
        let got = frames(b"Content-Length: 2\r\n\r\n{}Content-Length: x\r\n\r\nContent-Length: 3\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\nabc");
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Frame::Body(b"{}".to_vec()));
        assert!(matches!(&got[1], Frame::BadHeader(w) if w.contains("not a number")));
        assert_eq!(got[2], Frame::Body(b"abc".to_vec()));
    }

    #[test]
    fn truncated_and_oversized_bodies_are_bad_frames() {
        let got = frames(b"Content-Length: 10\r\n\r\nabc");
        assert!(matches!(&got[..], [Frame::BadHeader(w)] if w.contains("ends inside a body")));
        let big = format!("Content-Length: {}\r\n\r\n", MAX_BODY + 1);
        let got = frames(big.as_bytes());
        assert!(matches!(&got[..], [Frame::BadHeader(_)]));
        let got = frames(b"garbage without a colon\r\n\r\n");
        assert!(matches!(&got[..], [Frame::BadHeader(w)] if w.contains("not a header")));
    }

    #[test]
    fn refusals_have_the_protocol_codes() {
        let code =
            |b: &str| refusal(b.as_bytes()).map(|v| v["error"]["code"].as_i64().unwrap_or(0));
        assert_eq!(code("{not json"), Some(-32700));
        assert_eq!(code("[1, 2]"), Some(-32600));
        assert_eq!(code(r#"{"jsonrpc":"1.0","method":"x"}"#), Some(-32600));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#),
            Some(-32600)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#),
            Some(-32600)
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#),
            None
        );
        assert_eq!(code(r#"{"jsonrpc":"2.0","method":"initialized"}"#), None);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":4,"result":null}"#), None);
        let answer = refusal(br#"{"jsonrpc":"2.0","id":"a","method":7}"#).expect("refused");
        assert_eq!(answer["id"], "a");
    }
}
