//! The architecture as the code has it: every module uses only the layers
//! listed before it in the layer table of docs/architecture.md, no two files
//! outside `src/task/` import each other in a cycle, and no file in `src/`
//! is over 800 lines; and the table of files that may hold unsafe code
//! names exactly those that allow it.
//!
//! "Uses" means a `crate::` or `super::` path in code (not in comments, and
//! not in `#[cfg(test)]` modules); a parent module re-exporting its own
//! children (`pub use child::Item`) is how Rust facades are built and does
//! not count.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`src/net/unix/mod.rs`
/// is `["net", "unix"]`; `src/lib.rs` is `[]`).
fn source_files(dir: &Path, out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src()).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_str().unwrap().to_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of a file: comments and `#[cfg(test)]` modules cut out.
fn code(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `crate::a::b…` and `super::…` paths in `code`, made absolute for a
/// file whose module path is `me`, also expanding one level of braces
/// (`crate::a::{b, c::d}`).
fn paths(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start).map(|i| i + from) {
            from = i + start.len();
            if i > 0 && (is_ident(bytes[i - 1]) || bytes[i - 1] == b'$') {
                continue;
            }
            let mut base: Vec<String> = if start == "crate::" {
                Vec::new()
            } else {
                me[..me.len().saturating_sub(1)].to_vec()
            };
            let mut j = from;
            let mut segments = Vec::new();
            loop {
                let end = (j..bytes.len())
                    .find(|&k| !is_ident(bytes[k]))
                    .unwrap_or(bytes.len());
                let segment = &code[j..end];
                if segment == "super" {
                    base.pop();
                } else if !segment.is_empty() {
                    segments.push(segment.to_owned());
                }
                if code[end..].starts_with("::{") {
                    let close = code[end..]
                        .find('}')
                        .map(|c| c + end)
                        .unwrap_or(bytes.len());
                    for item in code[end + 3..close].split(',') {
                        let item: Vec<String> = item
                            .trim()
                            .split("::")
                            .map(|s| s.trim().to_owned())
                            .collect();
                        let mut p = base.clone();
                        p.extend(segments.iter().cloned());
                        p.extend(item);
                        out.push(p);
                    }
                    break;
                }
                if code[end..].starts_with("::") {
                    j = end + 2;
                } else {
                    let mut p = base.clone();
                    p.extend(segments.iter().cloned());
                    out.push(p);
                    break;
                }
            }
        }
    }
    out
}

/// The file a path points into: the longest prefix that is a module file.
fn resolve<'a>(path: &[String], files: &'a BTreeMap<Vec<String>, PathBuf>) -> Option<&'a [String]> {
    (1..=path.len())
        .rev()
        .find_map(|n| files.get_key_value(&path[..n]).map(|(k, _)| k.as_slice()))
}

/// Which files each file uses.
fn graph(files: &BTreeMap<Vec<String>, PathBuf>) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut edges = BTreeMap::new();
    for (me, path) in files {
        let used: BTreeSet<Vec<String>> = paths(&code(path), me)
            .iter()
            .filter_map(|p| resolve(p, files))
            .filter(|target| *target != me.as_slice())
            .map(<[String]>::to_vec)
            .collect();
        edges.insert(me.clone(), used);
    }
    edges
}

/// The layers in the order of the table in docs/architecture.md: the
/// top-level module names of each row's files.
fn layer_order() -> Vec<String> {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .unwrap();
    let table = doc
        .split("## Layers")
        .nth(1)
        .expect("docs/architecture.md has a Layers section");
    let mut order = Vec::new();
    for row in table
        .lines()
        .skip_while(|l| !l.starts_with("| layer"))
        .skip(2)
    {
        if !row.starts_with('|') {
            break;
        }
        let files = row.split('|').nth(2).unwrap();
        for file in files.split('`').filter(|s| s.starts_with("src/")) {
            let name = file["src/".len()..]
                .trim_end_matches('/')
                .trim_end_matches(".rs");
            let name = name.split('/').next().unwrap().to_owned();
            if !order.contains(&name) {
                order.push(name);
            }
        }
    }
    order
}

#[test]
fn every_module_uses_only_the_layers_before_it() {
    let mut files = BTreeMap::new();
    source_files(&src(), &mut files);
    let order = layer_order();
    let rank = |m: &[String]| {
        m.first()
            .and_then(|top| order.iter().position(|o| o == top))
    };
    let mut wrong = Vec::new();
    for top in files.keys().filter(|k| k.len() == 1) {
        assert!(
            rank(top).is_some() || top[0] == "compat",
            "src/{} is in no row of the layer table",
            top[0]
        );
    }
    for (from, used) in graph(&files) {
        let Some(own) = rank(&from) else { continue };
        for to in used {
            if let Some(theirs) = rank(&to)
                && theirs > own
            {
                wrong.push(format!("{} uses {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer order: {wrong:#?}"
    );
}

#[test]
fn no_import_cycle_between_files_outside_the_task_layer() {
    let mut files = BTreeMap::new();
    source_files(&src(), &mut files);
    let edges = graph(&files);
    // Inside src/task/ (one layer split by job).
    let outside = |m: &Vec<String>| m.first().is_none_or(|t| t != "task");
    // Depth-first search for a cycle among the files outside src/task/.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        keep: &dyn Fn(&Vec<String>) -> bool,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        if let Some(i) = stack.iter().position(|n| n == node) {
            return Some(stack[i..].to_vec());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in edges[node].iter().filter(|n| keep(n)) {
            if let Some(cycle) = visit(next, edges, keep, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys().filter(|n| outside(n)) {
        let cycle = visit(node, &edges, &outside, &mut Vec::new(), &mut done);
        assert!(cycle.is_none(), "import cycle: {cycle:?}");
    }
}

#[test]
fn no_source_file_is_over_800_lines() {
    let mut files = BTreeMap::new();
    source_files(&src(), &mut files);
    for path in files.values() {
        let lines = fs::read_to_string(path).unwrap().lines().count();
        assert!(lines <= 800, "{} has {lines} lines", path.display());
    }
}

#[test]
fn the_checker_sees_imports() {
    // The parser itself: a path in code counts, in a comment it does not,
    // braces expand, and `super` climbs from the file's module.
    let me = vec!["sync".to_owned(), "mutex".to_owned()];
    let found = paths(
        "use crate::task::{park::Unparker, TaskRef};\n// crate::net::x\nsuper::waiter::f();",
        &me,
    );
    assert!(found.contains(&vec!["task".into(), "park".into(), "Unparker".into()]));
    assert!(found.contains(&vec!["task".into(), "TaskRef".into()]));
    assert!(found.contains(&vec!["sync".into(), "waiter".into(), "f".into()]));
    let code = code(&src().join("scheduler.rs"));
    assert!(
        paths(&code, &["scheduler".to_owned()])
            .iter()
            .any(|p| p[0] == "reactor")
    );
    assert!(!layer_order().is_empty());
}

#[test]
fn the_unsafe_table_names_exactly_the_files_that_allow_unsafe_code() {
    let mut files = BTreeMap::new();
    source_files(&src(), &mut files);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let allowing: BTreeSet<String> = files
        .values()
        .filter(|p| code(p).contains("allow(unsafe_code)"))
        .map(|p| p.strip_prefix(root).unwrap().to_str().unwrap().to_owned())
        .collect();
    let doc = fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let table = doc
        .split("### Where unsafe code lives")
        .nth(1)
        .expect("docs/architecture.md has a section on unsafe code");
    let listed: BTreeSet<String> = table
        .lines()
        .skip_while(|l| !l.starts_with("| files"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let files = row.split('|').nth(1).unwrap();
            files
                .split('`')
                .filter(|s| s.starts_with("src/"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(allowing, listed, "files allowing unsafe code vs the table");
    assert!(allowing.len() > 10);
}
