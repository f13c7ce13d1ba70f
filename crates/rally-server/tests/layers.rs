//! The server crate's floors, as `src/lib.rs`'s Layout section lists them, hold in the
//! code: every module of the crate is in the list, and a module imports (`crate::x`) only
//! modules listed below it (its own floor's later entries and the floors beneath). So an
//! import that points upward, or a module left out of the Layout, fails here rather than
//! in a reviewer's reading of the import graph. Test modules (`#[cfg(test)] mod tests`)
//! are not counted: they may reach whatever they test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module names of the Layout section, top to bottom.
fn layout(lib: &str) -> Vec<String> {
    let mut in_layout = false;
    let mut modules = Vec::new();
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            if in_layout {
                break;
            }
            continue;
        };
        let doc = doc.trim_start();
        if doc.starts_with("# Layout") {
            in_layout = true;
            continue;
        }
        if !in_layout {
            continue;
        }
        if let Some(item) = doc.strip_prefix("- ") {
            let item = item.trim_start_matches('[');
            let name = item
                .strip_prefix('`')
                .and_then(|rest| rest.split('`').next())
                .unwrap_or_else(|| panic!("a Layout entry names its module in backticks: {doc}"));
            modules.push(name.to_owned());
        }
    }
    modules
}

/// The top-level modules `lib.rs` declares.
fn declared(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")?.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn files(dir: &Path, top: Option<&str>, out: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 file names")
            .to_owned();
        if path.is_dir() {
            files(&path, Some(top.unwrap_or(&name)), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = top.map_or(name.clone(), str::to_owned);
            if module != "lib" {
                out.push((module, path));
            }
        }
    }
}

/// The crate modules a file's code (not its test module) names as `crate::x`, including
/// each `x` of a `use crate::{x, y::z}` group.
fn imports(code: &str) -> BTreeSet<String> {
    let code = match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => &code[..at],
        None => code,
    };
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for part in group.split(',') {
                let name = ident(part.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn every_module_imports_only_the_modules_listed_below_it() {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("read lib.rs");
    let order = layout(&lib);
    assert!(
        order.len() > 10,
        "the Layout section lists the modules: {order:?}"
    );
    let listed: BTreeSet<String> = order.iter().cloned().collect();
    assert_eq!(
        listed,
        declared(&lib),
        "every module lib.rs declares is in its Layout section, and only those"
    );
    let rank = |m: &str| order.iter().position(|o| o == m);
    let mut files_seen = Vec::new();
    files(&src(), None, &mut files_seen);
    let mut upward = Vec::new();
    for (module, path) in &files_seen {
        let code = std::fs::read_to_string(path).expect("read a source file");
        let here = rank(module).unwrap_or_else(|| panic!("{module} is not in the Layout"));
        for dep in imports(&code) {
            let Some(there) = rank(&dep) else { continue };
            if dep != *module && there < here {
                upward.push(format!(
                    "{} imports `{dep}`, listed above `{module}`",
                    path.strip_prefix(src()).unwrap_or(path).display()
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports pointing up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_import_reader_sees_groups_and_paths_and_skips_test_modules() {
    let code = "use crate::outbox::{Ending, Outbound};\nuse crate::{error, metrics::Stats};\n\
                fn f() { crate::limits::Budget::new(); }\n#[cfg(test)]\nmod tests { use crate::server; }\n";
    let found: Vec<String> = imports(code).into_iter().collect();
    assert_eq!(found, ["error", "limits", "metrics", "outbox"]);
}
