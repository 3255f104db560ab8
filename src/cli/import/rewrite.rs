//! `mcp-exporter import --wrap`: the client's own JSON file, rewritten so that each stdio server
//! runs through `mcp-exporter wrap --name <key> -- <command> <args...>` (docs/traffic.md).
//!
//! The rewrite is a splice into the original text, not a re-serialization: only the `command`
//! and `args` values of the stdio entries change, so key order, formatting, `env`, HTTP entries
//! and keys this program does not know stay exactly as they were. An entry already wrapped is
//! left alone, so running the rewrite on its own output changes nothing.

use std::path::Path;

use serde_json::Value;

use super::{ImportError, transport_of};

/// The first argument of a wrapped entry.
const WRAP: &str = "wrap";
/// The program name every wrapped entry may use, whatever `--binary` says now.
const DEFAULT_BINARY: &str = "mcp-exporter";

/// A rewritten client file and what was done to each entry.
#[derive(Debug)]
pub struct Rewritten {
    /// The client's file with its stdio servers wrapped.
    pub text: String,
    /// One line per entry that was not wrapped now, saying why.
    pub notes: Vec<String>,
    /// The keys of the entries wrapped by this rewrite.
    pub wrapped: Vec<String>,
}

/// Rewrites the client's JSON `text` (`path` names it in messages) so each stdio server runs
/// through `binary wrap --name <key> --`.
pub fn rewrite(text: &str, path: &Path, binary: &str) -> Result<Rewritten, ImportError> {
    let json: Value = serde_json::from_str(text).map_err(|source| ImportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let no_servers = || ImportError::NoServers {
        path: path.to_path_buf(),
    };
    // The same list `import` reads: `mcpServers`, else VS Code's `servers`.
    let list_key = if json.get("mcpServers").is_some_and(Value::is_object) {
        "mcpServers"
    } else if json.get("servers").is_some_and(Value::is_object) {
        "servers"
    } else {
        return Err(no_servers());
    };
    let invariant = |what: &str| ImportError::Generated(format!("scanning {what}: {text:?}"));
    let root = Scanner::new(text).object_members(Span::whole(text))?;
    let list = root
        .iter()
        .rev()
        .find(|m| m.key == list_key)
        .ok_or_else(|| invariant("the server list"))?;
    let scanner = Scanner::new(text);
    let mut edits: Vec<Edit> = Vec::new();
    let mut notes = Vec::new();
    let mut wrapped = Vec::new();
    for entry in scanner.object_members(list.value)? {
        let value: Value = serde_json::from_str(entry.value.of(text))
            .map_err(|_| invariant("an entry of the server list"))?;
        let key = &entry.key;
        let entry_error = |problem: String| ImportError::Entry {
            path: path.to_path_buf(),
            name: key.clone(),
            problem,
        };
        if !value.is_object() {
            return Err(entry_error(format!("{value} is not an object")));
        }
        match transport_of(&value).map_err(&entry_error)? {
            "stdio" => {}
            other => {
                notes.push(format!("server {key:?} uses {other}; left as is"));
                continue;
            }
        }
        let members = scanner.object_members(entry.value)?;
        let field = |name: &str| members.iter().rev().find(|m| m.key == name);
        let Some(command) = field("command") else {
            return Err(entry_error("a stdio server without `command`".to_string()));
        };
        let Some(command_text) = value.get("command").and_then(Value::as_str) else {
            return Err(entry_error("`command` is not a string".to_string()));
        };
        let args = match field("args") {
            None => None,
            Some(args) if value.get("args") == Some(&Value::Null) => Some((args, Vec::new())),
            Some(args) if value.get("args").is_some_and(Value::is_array) => {
                Some((args, scanner.array_elements(args.value)?))
            }
            Some(_) => return Err(entry_error("`args` is not a list".to_string())),
        };
        let first_arg = value
            .get("args")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str);
        if is_wrapped(command_text, first_arg, binary) {
            notes.push(format!("server {key:?} is already wrapped; left as is"));
            continue;
        }
        // The original command and arguments keep their exact text (escapes, numbers).
        let mut new_args = vec![
            json_string(WRAP),
            json_string("--name"),
            json_string(key),
            json_string("--"),
            command.value.of(text).to_string(),
        ];
        if let Some((_, elements)) = &args {
            new_args.extend(elements.iter().map(|e| e.of(text).to_string()));
        }
        let args_text = format!("[{}]", new_args.join(", "));
        edits.push(Edit {
            at: command.value,
            with: json_string(binary),
        });
        edits.push(match args {
            Some((args, _)) => Edit {
                at: args.value,
                with: args_text,
            },
            // No `args` (or none but `null`): one is added after `command`.
            None => Edit {
                at: Span {
                    start: command.value.end,
                    end: command.value.end,
                },
                with: format!(", \"args\": {args_text}"),
            },
        });
        wrapped.push(key.clone());
    }
    let out = apply(text, edits);
    serde_json::from_str::<Value>(&out)
        .map_err(|e| ImportError::Generated(format!("the rewritten file is not JSON: {e}")))?;
    Ok(Rewritten {
        text: out,
        notes,
        wrapped,
    })
}

/// True when `command args[0]` already starts the wrapper: `args[0]` is `wrap` and the command
/// is `binary`, or has its file name or the default `mcp-exporter` one.
fn is_wrapped(command: &str, first_arg: Option<&str>, binary: &str) -> bool {
    let file_name = |p: &str| {
        Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    first_arg == Some(WRAP)
        && (command == binary
            || file_name(command)
                .is_some_and(|n| n == DEFAULT_BINARY || Some(n) == file_name(binary)))
}

fn json_string(text: &str) -> String {
    Value::String(text.to_string()).to_string()
}

/// Replaces each edit's span; edits never overlap.
fn apply(text: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_by_key(|e| std::cmp::Reverse(e.at.start));
    let mut out = text.to_string();
    for edit in edits {
        out.replace_range(edit.at.start..edit.at.end, &edit.with);
    }
    out
}

/// One replacement of the original text.
struct Edit {
    at: Span,
    with: String,
}

/// Where a JSON value is in the text, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn whole(text: &str) -> Span {
        Span {
            start: 0,
            end: text.len(),
        }
    }

    fn of(self, text: &str) -> &str {
        &text[self.start..self.end]
    }
}

/// A key of an object and where its value is.
struct Member {
    key: String,
    value: Span,
}

/// Finds where values are in JSON text that `serde_json` has already accepted, so every
/// structure seen here is well formed; a surprise is reported as our bug
/// ([`ImportError::Generated`]), never a panic.
struct Scanner<'a> {
    text: &'a str,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Scanner<'a> {
        Scanner { text }
    }

    fn bug(&self, at: usize) -> ImportError {
        ImportError::Generated(format!("unexpected JSON at byte {at}"))
    }

    fn skip_space(&self, mut at: usize) -> usize {
        let bytes = self.text.as_bytes();
        while at < bytes.len() && matches!(bytes[at], b' ' | b'\t' | b'\n' | b'\r') {
            at += 1;
        }
        at
    }

    fn expect(&self, at: usize, byte: u8) -> Result<usize, ImportError> {
        let at = self.skip_space(at);
        if self.text.as_bytes().get(at) == Some(&byte) {
            Ok(at + 1)
        } else {
            Err(self.bug(at))
        }
    }

    /// The value starting at or after `at` (after blanks).
    fn value(&self, at: usize) -> Result<Span, ImportError> {
        let bytes = self.text.as_bytes();
        let start = self.skip_space(at);
        let mut i = start;
        match bytes.get(i) {
            Some(b'"') => {
                i += 1;
                while let Some(&b) = bytes.get(i) {
                    match b {
                        b'\\' => i += 2,
                        b'"' => return Ok(Span { start, end: i + 1 }),
                        _ => i += 1,
                    }
                }
                Err(self.bug(start))
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                while let Some(&b) = bytes.get(i) {
                    match b {
                        b'"' => {
                            i = self.value(i)?.end;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(Span { start, end: i + 1 });
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                Err(self.bug(start))
            }
            Some(_) => {
                while let Some(&b) = bytes.get(i) {
                    if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    i += 1;
                }
                if i == start {
                    Err(self.bug(start))
                } else {
                    Ok(Span { start, end: i })
                }
            }
            None => Err(self.bug(start)),
        }
    }

    /// The members of the object at `span`, in the order written.
    fn object_members(&self, span: Span) -> Result<Vec<Member>, ImportError> {
        let mut at = self.expect(span.start, b'{')?;
        let mut members = Vec::new();
        if self.text.as_bytes().get(self.skip_space(at)) == Some(&b'}') {
            return Ok(members);
        }
        loop {
            let key_span = self.value(at)?;
            let key: String = serde_json::from_str(key_span.of(self.text))
                .map_err(|_| self.bug(key_span.start))?;
            at = self.expect(key_span.end, b':')?;
            let value = self.value(at)?;
            members.push(Member { key, value });
            at = self.skip_space(value.end);
            match self.text.as_bytes().get(at) {
                Some(b',') => at += 1,
                Some(b'}') => return Ok(members),
                _ => return Err(self.bug(at)),
            }
        }
    }

    /// The elements of the array at `span`, in order.
    fn array_elements(&self, span: Span) -> Result<Vec<Span>, ImportError> {
        let mut at = self.expect(span.start, b'[')?;
        let mut elements = Vec::new();
        if self.text.as_bytes().get(self.skip_space(at)) == Some(&b']') {
            return Ok(elements);
        }
        loop {
            let element = self.value(at)?;
            elements.push(element);
            at = self.skip_space(element.end);
            match self.text.as_bytes().get(at) {
                Some(b',') => at += 1,
                Some(b']') => return Ok(elements),
                _ => return Err(self.bug(at)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(text: &str) -> Rewritten {
        rewrite(text, Path::new("client.json"), "mcp-exporter").unwrap()
    }

    fn json(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_stdio_entry_runs_through_the_wrapper_and_the_rest_is_untouched() {
        let original = r#"{
  "globalShortcut": "Ctrl+Space",
  "mcpServers": {
    "memory": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-memory"],
      "env": {"MEMORY_FILE_PATH": "/tmp/m.jsonl", "TOKEN": "s3cret"},
      "futureKey": [1, {"x": "]"}]
    },
    "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer abc"}},
    "old": {"type": "sse", "url": "http://127.0.0.1:3001/sse"}
  }
}"#;
        let out = wrap(original);
        let expected = original.replace(
            r#""command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-memory"],"#,
            r#""command": "mcp-exporter",
      "args": ["wrap", "--name", "memory", "--", "npx", "-y", "@modelcontextprotocol/server-memory"],"#,
        );
        assert_eq!(out.text, expected);
        assert_eq!(out.wrapped, ["memory"]);
        assert!(
            out.notes
                .iter()
                .any(|n| n == "server \"remote\" uses http; left as is"),
            "{:?}",
            out.notes
        );
        assert!(out.notes.iter().any(|n| n.contains("\"old\" uses sse")));
    }

    #[test]
    fn rewriting_twice_changes_nothing_more() {
        let once = wrap(
            r#"{"servers": {"a": {"type": "stdio", "command": "node", "args": ["s.js", "${workspaceFolder}"]},
                            "b": {"command": "/usr/bin/python3"}}}"#,
        );
        assert_eq!(once.wrapped, ["a", "b"]);
        let twice = wrap(&once.text);
        assert_eq!(twice.text, once.text);
        assert!(twice.wrapped.is_empty());
        assert_eq!(
            twice.notes,
            [
                "server \"a\" is already wrapped; left as is",
                "server \"b\" is already wrapped; left as is"
            ]
        );
        let v = json(&once.text);
        assert_eq!(
            v["servers"]["a"],
            json(
                r#"{"type": "stdio", "command": "mcp-exporter",
                    "args": ["wrap", "--name", "a", "--", "node", "s.js", "${workspaceFolder}"]}"#
            )
        );
        // No `args` before: one is added after `command`.
        assert_eq!(
            v["servers"]["b"]["args"],
            json(r#"["wrap", "--name", "b", "--", "/usr/bin/python3"]"#)
        );
    }

    #[test]
    fn the_binary_can_be_a_path_and_is_recognised_as_already_wrapping() {
        let text = r#"{"mcpServers": {"x": {"command": "uvx", "args": ["srv"]}}}"#;
        let bin = "/opt/mcp exporter/bin/mcp-exporter";
        let once = rewrite(text, Path::new("c.json"), bin).unwrap();
        let v = json(&once.text);
        assert_eq!(v["mcpServers"]["x"]["command"], json(&json_string(bin)));
        assert_eq!(
            rewrite(&once.text, Path::new("c.json"), bin).unwrap().text,
            once.text
        );
        // Wrapped by a `mcp-exporter` elsewhere, or by the same path: both count as wrapped.
        assert!(is_wrapped("mcp-exporter", Some("wrap"), bin));
        assert!(is_wrapped(
            "/usr/local/bin/mcp-exporter",
            Some("wrap"),
            "mcp-exporter"
        ));
        assert!(is_wrapped(
            "/opt/x/exporter",
            Some("wrap"),
            "/opt/x/exporter"
        ));
        // A server that merely takes `wrap` as its first argument is not the wrapper.
        assert!(!is_wrapped("node", Some("wrap"), "mcp-exporter"));
        assert!(!is_wrapped("mcp-exporter", Some("serve"), "mcp-exporter"));
        assert!(!is_wrapped("mcp-exporter", None, "mcp-exporter"));
    }

    #[test]
    fn keys_and_arguments_keep_their_exact_text() {
        // Escapes in the key and the arguments, a number argument, unicode, nested brackets
        // in strings: the original text of each argument is carried over unchanged.
        let text = "{\"mcpServers\":{\"my \\\"odd\\\" srv\\u00e9\":{\"command\":\"n\\u006fde\",\"args\":[\"a]\\\\\",7,\"\u{1F600}\"],\"env\":{}}}}";
        let out = wrap(text);
        let v = json(&out.text);
        let entry = &v["mcpServers"]["my \"odd\" srv\u{e9}"];
        assert_eq!(
            entry["args"],
            json(
                "[\"wrap\", \"--name\", \"my \\\"odd\\\" srv\u{e9}\", \"--\", \"node\", \"a]\\\\\", 7, \"\u{1F600}\"]"
            )
        );
        assert!(
            out.text.contains("\"n\\u006fde\", \"a]\\\\\", 7,"),
            "{}",
            out.text
        );
        assert_eq!(wrap(&out.text).text, out.text);
    }

    #[test]
    fn disabled_entries_are_wrapped_too_and_null_args_are_replaced() {
        let out =
            wrap(r#"{"mcpServers": {"off": {"command": "x", "args": null, "disabled": true}}}"#);
        assert_eq!(
            json(&out.text),
            json(
                r#"{"mcpServers": {"off": {"command": "mcp-exporter",
                    "args": ["wrap", "--name", "off", "--", "x"], "disabled": true}}}"#
            )
        );
    }

    #[test]
    fn problems_name_the_file_and_the_entry() {
        let err = |text: &str| {
            rewrite(text, Path::new("c.json"), "mcp-exporter")
                .unwrap_err()
                .to_string()
        };
        assert!(err("{").starts_with("c.json is not JSON"));
        assert!(err(r#"{"servers": []}"#).contains("no `mcpServers` object"));
        assert_eq!(
            err(r#"{"mcpServers": {"x": {"command": "a", "args": "b"}}}"#),
            "c.json: server \"x\": `args` is not a list"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"x": {"command": 3}}}"#),
            "c.json: server \"x\": `command` is not a string"
        );
        assert_eq!(
            err(r#"{"mcpServers": {"x": {"type": "stdio"}}}"#),
            "c.json: server \"x\": a stdio server without `command`"
        );
        assert!(err(r#"{"mcpServers": {"x": 1}}"#).contains("is not an object"));
    }

    #[test]
    fn the_scanner_finds_members_and_elements() {
        let text = r#" { "a" : [1, "x,]", {"b": null}] , "c":true }"#;
        let s = Scanner::new(text);
        let members = s.object_members(Span::whole(text)).unwrap();
        let keys: Vec<&str> = members.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["a", "c"]);
        assert_eq!(members[1].value.of(text), "true");
        let elements: Vec<&str> = s
            .array_elements(members[0].value)
            .unwrap()
            .iter()
            .map(|e| e.of(text))
            .collect();
        assert_eq!(elements, ["1", "\"x,]\"", "{\"b\": null}"]);
    }
}
