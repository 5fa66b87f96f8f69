//! The commands of the `veritrail` binary: one file per command, and [`common`] for what
//! they share.
//!
//! A command module depends on [`common`] and on the library crates, never on another
//! command; `main.rs` parses the command line and dispatches to them.
//!
//! | command                      | module                |
//! |------------------------------|-----------------------|
//! | `keygen`                     | [`keygen`]            |
//! | `serve`                      | [`serve`]             |
//! | `log append`                 | [`log_append`]        |
//! | `log verify`                 | [`log_verify`]        |
//! | `admin reindex`, `admin hold`| [`admin`]             |
//! | `archive`, `verify-archive` | [`archive`]          |
//! | `bench append`               | [`bench`](mod@bench) (the load generator, its own module tree) |
//! | `append`                     | [`append`]            |
//! | `record`                     | [`record`]            |
//! | `payload`                    | [`payload`]           |
//! | `query`                      | [`query`]             |
//! | `audit conversation`         | [`audit`]             |
//! | `get`                        | [`get`]               |
//! | `prove`                      | [`prove`]             |
//! | `checkpoint`                 | [`checkpoint`]        |
//! | `monitor`                    | [`monitor`]           |
//! | `verify-receipt`             | [`verify_receipt`]    |
//! | `verify-evidence`            | [`verify_evidence`]   |

pub(crate) mod admin;
pub(crate) mod append;
pub(crate) mod archive;
pub(crate) mod audit;
pub(crate) mod bench;
pub(crate) mod checkpoint;
pub(crate) mod common;
pub(crate) mod get;
pub(crate) mod keygen;
pub(crate) mod log_append;
pub(crate) mod log_verify;
pub(crate) mod monitor;
pub(crate) mod payload;
pub(crate) mod prove;
pub(crate) mod query;
pub(crate) mod record;
pub(crate) mod retention;
pub(crate) mod serve;
pub(crate) mod verify_evidence;
pub(crate) mod verify_receipt;
pub(crate) mod witness;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    //! The layout rules, checked on the source text: no file-level `use crate::` cycle in
    //! `src/`, and no command module depending on another command.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every `crate::a::b` path in `text` (comments stripped, `{...}` groups expanded).
    fn crate_paths(text: &str) -> Vec<Vec<String>> {
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let mut out = Vec::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let prefix: Vec<String> = rest[..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if rest[end..].starts_with('{') {
                let group = &rest[end + 1..rest[end..].find('}').map_or(rest.len(), |i| end + i)];
                for item in group.split(',') {
                    let item = item.split(" as ").next().unwrap_or("").trim();
                    let mut path = prefix.clone();
                    path.extend(
                        item.split("::")
                            .filter(|s| !s.is_empty() && *s != "self")
                            .map(str::to_owned),
                    );
                    out.push(path);
                }
            } else {
                out.push(prefix);
            }
        }
        out
    }

    /// The deepest file that `path` names a module of (the crate root otherwise).
    fn module_file(src: &Path, path: &[String]) -> PathBuf {
        for n in (1..=path.len()).rev() {
            let base = path[..n].iter().fold(src.to_owned(), |p, s| p.join(s));
            for candidate in [base.with_extension("rs"), base.join("mod.rs")] {
                if candidate.is_file() {
                    return candidate;
                }
            }
        }
        src.join("main.rs")
    }

    fn graph() -> BTreeMap<PathBuf, BTreeSet<PathBuf>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files
            .iter()
            .map(|file| {
                let text = std::fs::read_to_string(file).unwrap();
                let deps = crate_paths(&text)
                    .iter()
                    // A bare `crate::` (as in this test's own strings) names no module.
                    .filter(|p| !p.is_empty())
                    .map(|p| module_file(&src, p))
                    .filter(|d| d != file)
                    .collect();
                (file.clone(), deps)
            })
            .collect()
    }

    #[test]
    fn no_file_level_import_cycle() {
        let graph = graph();
        // Depth-first search; a grey node reached again closes a cycle.
        fn visit(
            node: &PathBuf,
            graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
            state: &mut BTreeMap<PathBuf, bool>,
            stack: &mut Vec<PathBuf>,
            cycles: &mut Vec<String>,
        ) {
            match state.get(node) {
                Some(true) => return,
                Some(false) => {
                    let from = stack.iter().position(|n| n == node).unwrap_or(0);
                    cycles.push(format!("{:?} -> {node:?}", &stack[from..]));
                    return;
                }
                None => {}
            }
            state.insert(node.clone(), false);
            stack.push(node.clone());
            for next in graph.get(node).into_iter().flatten() {
                visit(next, graph, state, stack, cycles);
            }
            stack.pop();
            state.insert(node.clone(), true);
        }
        let (mut state, mut cycles) = (BTreeMap::new(), Vec::new());
        for node in graph.keys() {
            visit(node, &graph, &mut state, &mut Vec::new(), &mut cycles);
        }
        assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
        assert!(graph.len() > 10, "the scan found the source files");
    }

    #[test]
    fn commands_depend_on_common_never_on_each_other() {
        let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
        let command_of = |file: &Path| -> Option<PathBuf> {
            let rel = file.strip_prefix(&cli).ok()?;
            let first = rel.components().next()?.as_os_str().to_owned();
            (first != "common" && first != "mod.rs").then(|| cli.join(first))
        };
        let mut wrong = Vec::new();
        for (file, deps) in graph() {
            let Some(command) = command_of(&file) else {
                continue;
            };
            for dep in deps {
                if command_of(&dep).is_some_and(|other| other != command) {
                    wrong.push(format!("{file:?} uses {dep:?}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
