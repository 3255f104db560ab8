//! No import circle among the crate's modules.
//!
//! Reads every `src/**/*.rs` (the binary's `src/main.rs` aside: it only calls the library),
//! finds what each file refers to (`use crate::…`, `use super::…`, `use self::…`, `use child::…`
//! in a file that declares `mod child;`, and the same paths written inline, including
//! `#[serde(with = "crate::…")]`), and builds two graphs:
//!
//! - modules: one node per top-level module (`config`, `deps`, `probe`, …), an edge when a file
//!   of one refers to another;
//! - files: one node per file of a directory (`deps/http_check.rs`, `deps/postgres.rs`, …), an
//!   edge when a file refers to a sibling; `super::Name` follows the parent's `use` to the
//!   sibling that defines `Name`. The directory's `mod.rs` is the parent of these files, not a
//!   sibling: it declares them, they may use its items and it may call them, so it is left out.
//!
//! Test code (`#[cfg(test)]` modules, inline or in files of their own, and `#[cfg(test)] use`) is
//! left out: a test may build a whole configuration through src/settings/ without the module it
//! tests depending on the aggregator. Every strongly connected set of more than one node fails
//! the test, named with the references that tie it, unless it is listed in [`ALLOWED`] exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Ties allowed to close a circle, each with why it is still there (none today: src/ has no
/// import circle). Set aside, the graphs must have no circle; a new circle fails, and so does
/// an entry whose tie is gone or no longer closes a circle.
const ALLOWED: &[Allowed<'static>] = &[];

/// One reference from a file to a module path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    /// Absolute module path of what is referred to (crate root first), e.g. `deps::config::X`.
    target: Vec<String>,
    /// 1-based line in the referring file.
    line: usize,
    /// Whether it is test code (`#[cfg(test)]` module or `use`).
    in_test: bool,
}

/// One source file: its module path and text.
#[derive(Debug, Clone)]
struct SourceFile {
    /// Path relative to `src/`, e.g. `deps/http.rs`.
    rel: String,
    /// Module path, e.g. `["deps", "http"]`; empty for `lib.rs`.
    module: Vec<String>,
    /// The text.
    text: String,
}

/// An edge's evidence: `file:line name`.
type Evidence = BTreeSet<String>;
/// Adjacency with evidence per edge.
type Graph = BTreeMap<String, BTreeMap<String, Evidence>>;

/// The module path of a file relative to `src/`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let Some(last) = parts.pop() else {
        return parts;
    };
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// Replaces comments, char literals and string literals with spaces (newlines kept, so lines
/// stay where they are). A string whose whole content is a path (`"crate::config::x"`, as in
/// `#[serde(with = …)]`) is kept.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && starts_literal(&chars, i)
            && raw_string_hashes(&chars[i + 1..]).is_some()
        {
            let hashes = raw_string_hashes(&chars[i + 1..]).unwrap_or(0);
            let start = i;
            i += 2 + hashes;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !chars[i..].starts_with(&closing) {
                i += 1;
            }
            i = (i + closing.len()).min(chars.len());
            out.extend(chars[start..i].iter().map(|c| blank(*c)));
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i = (i + 1).min(chars.len());
            let content: String = chars[start + 1..i.saturating_sub(1).max(start + 1)]
                .iter()
                .collect();
            if is_path_text(&content) {
                out.push(' ');
                out.push_str(&content);
                out.push(' ');
            } else {
                out.extend(chars[start..i].iter().map(|c| blank(*c)));
            }
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                (i + 3..chars.len()).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.extend(chars[i..=end].iter().map(|c| blank(*c)));
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` begins a raw (byte) string rather than ending an identifier.
fn starts_literal(chars: &[char], i: usize) -> bool {
    let ident = |j: Option<usize>| {
        j.and_then(|j| chars.get(j))
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
    };
    !ident(i.checked_sub(1)) || (chars[i - 1] == 'b' && !ident(i.checked_sub(2)))
}

/// The number of `#` of a raw string starting after its `r`, when it is one.
fn raw_string_hashes(after_r: &[char]) -> Option<usize> {
    let hashes = after_r.iter().take_while(|c| **c == '#').count();
    (after_r.get(hashes) == Some(&'"')).then_some(hashes)
}

/// Whether a string literal's content is a crate path such as `crate::config::opt_duration`.
fn is_path_text(text: &str) -> bool {
    let mut parts = text.split("::");
    matches!(parts.next(), Some("crate" | "super" | "self"))
        && parts.clone().count() > 0
        && parts.all(|p| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_'))
}

/// A token: an identifier, `::`, or one punctuation character, with its line.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

fn tokens(stripped: &str) -> Vec<Token> {
    let chars: Vec<char> = stripped.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Expands a `use` tree starting at `tokens[*i]` into paths (segments; `*` for globs), moving
/// `*i` past it. `prefix` is what enclosing braces contributed.
fn use_tree(
    tokens: &[Token],
    i: &mut usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let mut path = prefix.to_vec();
    let line = tokens.get(*i).map_or(0, |t| t.line);
    while let Some(t) = tokens.get(*i) {
        match t.text.as_str() {
            "{" => {
                *i += 1;
                loop {
                    use_tree(tokens, i, &path, out);
                    match tokens.get(*i).map(|t| t.text.as_str()) {
                        Some(",") => *i += 1,
                        Some("}") => {
                            *i += 1;
                            break;
                        }
                        _ => return,
                    }
                    if tokens.get(*i).map(|t| t.text.as_str()) == Some("}") {
                        *i += 1;
                        break;
                    }
                }
                return;
            }
            "*" => {
                path.push("*".into());
                *i += 1;
                out.push((path, line));
                return;
            }
            "::" => *i += 1,
            "as" => {
                // `as name`: what is bound does not change what is referred to.
                *i += 2;
            }
            "," | "}" | ";" => {
                if path.len() > prefix.len() {
                    out.push((path, line));
                }
                return;
            }
            "self" if !prefix.is_empty() && path.len() == prefix.len() => {
                // `{self, …}` names the prefix itself.
                out.push((path.clone(), line));
                *i += 1;
                while !matches!(
                    tokens.get(*i).map(|t| t.text.as_str()),
                    None | Some("," | "}")
                ) {
                    *i += 1;
                }
                return;
            }
            text if is_ident(text) => {
                path.push(text.to_string());
                *i += 1;
            }
            _ => {
                *i += 1;
            }
        }
    }
}

/// Paths of one file: `use` trees and inline paths, made absolute. Also the names its top-level
/// `use` items bind (for following re-exports).
struct Parsed {
    references: Vec<Reference>,
    /// Child modules declared `#[cfg(test)] mod name;` (whole files of test code).
    test_children: BTreeSet<String>,
    /// Name bound at the file's top level -> absolute path it stands for.
    imports: BTreeMap<String, Vec<String>>,
}

/// Makes `path` (as written in a file of module `module`, inside `inline` nested inline modules
/// of it) absolute; `None` for external crates. `children` are the modules the file declares.
fn absolute(
    path: &[String],
    module: &[String],
    inline: &[String],
    children: &BTreeSet<String>,
) -> Option<Vec<String>> {
    let mut here: Vec<String> = module.iter().chain(inline).cloned().collect();
    let first = path.first()?;
    let rest: &[String] = match first.as_str() {
        "crate" => {
            here.clear();
            &path[1..]
        }
        "self" => &path[1..],
        "super" => {
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                here.pop()?;
                rest = &rest[1..];
            }
            rest
        }
        name if inline.is_empty() && children.contains(name) => path,
        _ => return None,
    };
    here.extend(rest.iter().cloned());
    Some(here)
}

fn parse(file: &SourceFile) -> Parsed {
    let toks = tokens(&strip(&file.text));
    let text = |j: usize| toks.get(j).map_or("", |t| t.text.as_str());
    let children: BTreeSet<String> = (0..toks.len())
        .filter(|&j| text(j) == "mod" && is_ident(text(j + 1)) && text(j + 2) == ";")
        .map(|j| text(j + 1).to_string())
        .collect();
    let mut references = Vec::new();
    let mut imports = BTreeMap::new();
    let mut test_children = BTreeSet::new();
    // Inline modules: (name, brace depth inside them, whether they are `#[cfg(test)]`).
    let mut inline: Vec<(String, usize, bool)> = Vec::new();
    // Whether the item about to start carries `#[cfg(test)]`.
    let mut pending_test = false;
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let names: Vec<String> = inline.iter().map(|(n, _, _)| n.clone()).collect();
        let in_test = pending_test || inline.iter().any(|(_, _, test)| *test);
        match text(i) {
            "#" if (1..=6)
                .map(|k| text(i + k))
                .eq(["[", "cfg", "(", "test", ")", "]"]) =>
            {
                pending_test = true;
                i += 7;
            }
            "{" => {
                depth += 1;
                i += 1;
            }
            "}" => {
                if inline.last().is_some_and(|(_, d, _)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                pending_test = false;
                i += 1;
            }
            "mod" if is_ident(text(i + 1)) && text(i + 2) == "{" => {
                inline.push((text(i + 1).to_string(), depth + 1, in_test));
                pending_test = false;
                i += 2;
            }
            "mod" if is_ident(text(i + 1)) && text(i + 2) == ";" => {
                if in_test {
                    test_children.insert(text(i + 1).to_string());
                }
                pending_test = false;
                i += 3;
            }
            ";" | "fn" | "struct" | "enum" | "impl" | "const" | "static" | "type" | "trait" => {
                pending_test = false;
                i += 1;
            }
            "use" if i == 0 || matches!(text(i - 1), ";" | "{" | "}" | "]" | "pub" | ")") => {
                i += 1;
                let mut paths = Vec::new();
                use_tree(&toks, &mut i, &[], &mut paths);
                for (path, line) in paths {
                    let Some(target) = absolute(&path, &file.module, &names, &children) else {
                        continue;
                    };
                    if names.is_empty()
                        && !in_test
                        && let Some(last) = path.last().filter(|l| *l != "*")
                    {
                        imports.insert(last.clone(), target.clone());
                    }
                    references.push(Reference {
                        target,
                        line,
                        in_test,
                    });
                }
                pending_test = false;
            }
            first
                if (matches!(first, "crate" | "super" | "self")
                    || (names.is_empty() && children.contains(first)))
                    && text(i + 1) == "::"
                    && !matches!(text(i.wrapping_sub(1)), "::" | "." | "$") =>
            {
                let line = toks[i].line;
                let mut path = vec![first.to_string()];
                let mut j = i + 1;
                while text(j) == "::" && is_ident(text(j + 1)) {
                    path.push(text(j + 1).to_string());
                    j += 2;
                }
                if let Some(target) = absolute(&path, &file.module, &names, &children) {
                    references.push(Reference {
                        target,
                        line,
                        in_test,
                    });
                }
                i = j;
            }
            _ => i += 1,
        }
    }
    Parsed {
        references,
        test_children,
        imports,
    }
}

/// The file (index into `files`) that defines the module path `target` refers into, following
/// top-level `use` re-exports of the named item (at most a few hops).
fn resolve(target: &[String], files: &[SourceFile], parsed: &[Parsed]) -> Option<usize> {
    let mut target = target.to_vec();
    for _ in 0..8 {
        let (index, len) = files
            .iter()
            .enumerate()
            .filter(|(_, f)| target.starts_with(&f.module))
            .max_by_key(|(_, f)| f.module.len())
            .map(|(i, f)| (i, f.module.len()))?;
        let Some(name) = target.get(len) else {
            return Some(index);
        };
        match parsed[index].imports.get(name) {
            Some(next) if next != &target && next.len() > 1 => {
                let mut next = next.clone();
                next.extend(target[len + 1..].iter().cloned());
                target = next;
            }
            _ => return Some(index),
        }
    }
    None
}

/// The module graph and the per-directory file graph of `files`.
fn graphs(files: &[SourceFile]) -> (Graph, Graph) {
    let parsed: Vec<Parsed> = files.iter().map(parse).collect();
    // Module paths of files that are test code as a whole (`#[cfg(test)] mod tests;`).
    let test_modules: Vec<Vec<String>> = files
        .iter()
        .zip(&parsed)
        .flat_map(|(f, p)| {
            p.test_children.iter().map(|child| {
                let mut path = f.module.clone();
                path.push(child.clone());
                path
            })
        })
        .collect();
    let mut modules = Graph::new();
    let mut within = Graph::new();
    for (from, file) in files.iter().enumerate() {
        let Some(top) = file.module.first() else {
            continue;
        };
        if test_modules.iter().any(|t| file.module.starts_with(t)) {
            continue;
        }
        for r in parsed[from].references.iter().filter(|r| !r.in_test) {
            let Some(to) = resolve(&r.target, files, &parsed) else {
                continue;
            };
            let evidence = format!("{}:{} {}", file.rel, r.line, r.target.join("::"));
            let target_top = files[to].module.first();
            if let Some(target_top) = target_top
                && target_top != top
            {
                modules
                    .entry(top.clone())
                    .or_default()
                    .entry(target_top.clone())
                    .or_default()
                    .insert(evidence.clone());
            }
            let dir = |f: &SourceFile| Path::new(&f.rel).parent().map(Path::to_path_buf);
            let is_parent = |f: &SourceFile| f.rel.ends_with("mod.rs");
            if to != from
                && dir(file) == dir(&files[to])
                && dir(file) != Some(PathBuf::new())
                && !is_parent(file)
                && !is_parent(&files[to])
            {
                within
                    .entry(file.rel.clone())
                    .or_default()
                    .entry(files[to].rel.clone())
                    .or_default()
                    .insert(evidence);
            }
        }
    }
    (modules, within)
}

/// Strongly connected sets of more than one node (Tarjan), each sorted.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut set = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                set.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                s.out.push(set);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// Every edge inside `set`, with the references that make it.
fn describe(graph: &Graph, set: &[String]) -> String {
    let mut out = format!("circle {}:\n", set.join(" <-> "));
    for from in set {
        for (to, evidence) in graph.get(from).into_iter().flatten() {
            if set.contains(to) {
                out.push_str(&format!("  {from} -> {to}:\n"));
                for e in evidence.iter().take(6) {
                    out.push_str(&format!("    {e}\n"));
                }
                if evidence.len() > 6 {
                    out.push_str(&format!("    … and {} more\n", evidence.len() - 6));
                }
            }
        }
    }
    out
}

/// One tie known to close a circle today: (from, to, why it is still there).
type Allowed<'a> = (&'a str, &'a str, &'a str);

/// Whether `to` can be reached from `from`.
fn reaches(graph: &Graph, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(v) = stack.pop() {
        if v == to {
            return true;
        }
        if seen.insert(v) {
            stack.extend(
                graph
                    .get(v)
                    .into_iter()
                    .flat_map(|m| m.keys().map(String::as_str)),
            );
        }
    }
    false
}

/// Failures: circles left once the allowed ties are set aside, and allowed ties that no longer
/// exist or no longer close a circle.
fn judge(modules: &Graph, within: &Graph, allowed: &[Allowed<'_>]) -> Vec<String> {
    let mut failures = Vec::new();
    for graph in [modules, within] {
        let mut rest = graph.clone();
        for (from, to, _) in allowed {
            if let Some(targets) = rest.get_mut(*from) {
                targets.remove(*to);
            }
        }
        failures.extend(circles(&rest).iter().map(|set| describe(&rest, set)));
    }
    for (from, to, why) in allowed {
        let graph = if modules.contains_key(*from) {
            modules
        } else {
            within
        };
        let exists = graph.get(*from).is_some_and(|t| t.contains_key(*to));
        if !exists || !reaches(graph, to, from) {
            failures.push(format!(
                "allowed tie {from} -> {to} ({why}) {}; remove it from ALLOWED in tests/integration/import_graph.rs",
                if exists {
                    "no longer closes a circle"
                } else {
                    "no longer exists"
                }
            ));
        }
    }
    failures
}

fn read_sources(src: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap_or(&path).to_path_buf();
                if rel == Path::new("main.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                files.push(SourceFile {
                    rel: rel.to_string_lossy().into_owned(),
                    module: module_of(&rel),
                    text,
                });
            }
        }
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    files
}

#[test]
fn src_has_no_import_circle_beyond_the_known_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_sources(&src);
    assert!(files.len() > 20, "src/ looks empty: {} files", files.len());
    let (modules, within) = graphs(&files);
    let failures = judge(&modules, &within, ALLOWED);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg(test)]
mod checks {
    use super::*;

    fn file(rel: &str, text: &str) -> SourceFile {
        SourceFile {
            rel: rel.into(),
            module: module_of(Path::new(rel)),
            text: text.into(),
        }
    }

    #[test]
    fn a_circle_between_modules_is_named_with_its_references() {
        let files = [
            file("lib.rs", "pub mod a;\npub mod b;\npub mod c;\n"),
            file(
                "a.rs",
                "use crate::b::Thing;\n#[cfg(test)]\nuse crate::c::OnlyInTests;\n",
            ),
            file(
                "b/mod.rs",
                "mod inner;\n#[cfg(test)]\nmod tests;\n// use crate::c::Commented;\nfn f() { let s = \"crate::c::x is text\"; }\n",
            ),
            file("b/tests.rs", "use crate::c::FromTests;\n"),
            file("b/inner.rs", "fn g() { crate::a::helper(); }\n"),
            file(
                "c.rs",
                "#[serde(with = \"crate::a::opt\")]\nstruct S;\n#[cfg(test)]\nmod tests {\n    use super::super::b::X;\n}\n",
            ),
        ];
        let (modules, within) = graphs(&files);
        let found = circles(&modules);
        assert_eq!(found, vec![vec!["a".to_string(), "b".to_string()]]);
        let failures = judge(&modules, &within, &[]);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].contains("a -> b:\n    a.rs:1 b::Thing"),
            "{}",
            failures[0]
        );
        assert!(
            failures[0].contains("b -> a:\n    b/inner.rs:1 a::helper"),
            "{}",
            failures[0]
        );
        // Paths in comments, ordinary strings and test modules are not references; a serde
        // `with` path is.
        assert_eq!(modules["c"].keys().collect::<Vec<_>>(), ["a"]);
        assert!(!modules.get("b").is_some_and(|m| m.contains_key("c")));
        assert!(!modules["a"].contains_key("c"));
        assert!(judge(&modules, &within, &[("b", "a", "known")]).is_empty());
        // Setting aside a tie that is not in the circle leaves it.
        assert_eq!(judge(&modules, &within, &[("c", "a", "not it")]).len(), 2);
    }

    #[test]
    fn a_circle_between_files_follows_re_exports_and_child_paths() {
        let files = [
            file("lib.rs", "pub mod p;\n"),
            file(
                "p/mod.rs",
                "mod tree;\nmod walk;\nmod use_it;\npub use tree::Tree;\nfn f() { walk::go(); }\n",
            ),
            file("p/tree.rs", "pub struct Tree;\n"),
            file("p/walk.rs", "use super::use_it::helper;\npub fn go() {}\n"),
            file("p/use_it.rs", "use super::{Tree, walk};\n"),
        ];
        let (modules, within) = graphs(&files);
        assert!(circles(&modules).is_empty());
        // `super::Tree` is tree.rs (re-exported by mod.rs), not mod.rs.
        assert!(within["p/use_it.rs"].contains_key("p/tree.rs"));
        assert!(!within["p/use_it.rs"].contains_key("p/mod.rs"));
        // mod.rs is the parent of the directory's files, not one of them.
        assert!(!within.contains_key("p/mod.rs"));
        assert!(within["p/use_it.rs"].contains_key("p/walk.rs"));
        assert_eq!(
            circles(&within),
            vec![vec!["p/use_it.rs".to_string(), "p/walk.rs".to_string()]]
        );
        let failures = judge(
            &modules,
            &within,
            &[
                ("x", "y", "gone"),
                ("p/use_it.rs", "p/tree.rs", "no circle"),
            ],
        );
        assert_eq!(failures.len(), 3, "{failures:?}");
        assert!(failures[1].contains("no longer exists"), "{}", failures[1]);
        assert!(
            failures[2].contains("no longer closes a circle"),
            "{}",
            failures[2]
        );
        assert!(judge(&modules, &within, &[("p/walk.rs", "p/use_it.rs", "known")]).is_empty());
    }

    #[test]
    fn use_trees_expand_nested_groups_and_globs() {
        let toks = tokens("crate::{a::{self, b as c}, d::*, e};");
        let mut out = Vec::new();
        let mut i = 0;
        use_tree(&toks, &mut i, &[], &mut out);
        let paths: Vec<String> = out.into_iter().map(|(p, _)| p.join("::")).collect();
        assert_eq!(
            paths,
            ["crate::a", "crate::a::b", "crate::d::*", "crate::e"]
        );
    }
}
