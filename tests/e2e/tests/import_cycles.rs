#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The layout tells the architecture (issue 22), and these tests keep it so:
//!
//! - within each crate every module depends only downward: no module (one
//!   `.rs` file under `src/`) reaches, through `use` or a path, a module
//!   that reaches back to it;
//! - `provider/` and `runner/` import nothing from each other's folders:
//!   what they share is the contract crate at the top level (`contract/`).
//!
//! Both read the source text, with no dependency beyond std: comments and
//! string literals are dropped (a string that is a path, as in
//! `#[serde(with = "super::classify::rfc3339_opt")]`, is kept). An arrow is
//! a `use` tree or a path starting with `crate::`, `super::`, `self::` or a
//! child module's name, and it points at the longest module its path names
//! (`crate::k8s::render::Names` points at `k8s/render.rs`). Between modules,
//! `#[cfg(test)]` items do not count (a test module may use anything), and
//! neither does an arrow from a submodule up to a module that contains it
//! (the submodule is part of it); between folders, everything counts.
//!
//! At baa6641, before issue 22, the first test named both circles
//! (`autodispatch/model.rs → types.rs → k8s/render.rs → autodispatch/model.rs`,
//! with `validate.rs` in it too, and `app.rs → serve.rs → app.rs`) and the
//! second 15 arrows from provider/ into runner/contract.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use beads_e2e::repo_root;

#[test]
fn no_module_imports_another_in_a_circle() {
    let root = repo_root();
    let mut cycles = Vec::new();
    let mut arrows = 0;
    for krate in crates(&root) {
        let graph = module_graph(&krate.modules(&root));
        arrows += graph.values().map(BTreeMap::len).sum::<usize>();
        for cycle in find_cycles(&graph) {
            // Which path makes each arrow, and every module of the circle.
            let by: Vec<&str> = cycle
                .windows(2)
                .map(|w| graph[&w[0]][&w[1]].as_str())
                .collect();
            let members = components(&graph)
                .into_iter()
                .find(|c| c.contains(&cycle[0]))
                .unwrap_or_default();
            cycles.push(format!(
                "{}\n  by {}\n  all of {} reach each other",
                krate.show(&cycle),
                by.join(", "),
                krate
                    .show(&members.into_iter().collect::<Vec<_>>())
                    .replace(" → ", ", ")
            ));
        }
    }
    // A reader that found no arrows would find no circles either.
    assert!(arrows > 100, "only {arrows} arrows between modules found");
    assert!(
        cycles.is_empty(),
        "modules that import each other in a circle:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn provider_and_runner_import_nothing_from_each_others_folders() {
    let root = repo_root();
    let crates = crates(&root);
    let mut wrong = Vec::new();
    for (from, to) in [("provider", "runner"), ("runner", "provider")] {
        // The crates whose folder is under `to` and not under `from`
        // (provider/tfplugin is under provider/ only).
        let foreign: BTreeSet<&str> = crates
            .iter()
            .filter(|c| c.dir.starts_with(to) && !c.dir.starts_with(from))
            .map(|c| c.lib_name.as_str())
            .collect();
        for file in rust_files(&root.join(from)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (path, _) in paths(&code(&text)) {
                if foreign.contains(path[0].as_str()) {
                    let file = file.strip_prefix(&root).unwrap().display();
                    wrong.push(format!("{file}: {}", path.join("::")));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} arrows between provider/ and runner/:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The checker itself finds a circle, through `use` trees, `super::`, child
/// modules and inline paths, and none in test modules, comments or a
/// submodule's arrows up to its parent.
#[test]
fn the_checker_finds_a_circle() {
    let sources = |files: &[(&str, &str)]| -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(m, s)| (m.to_string(), s.to_string()))
            .collect()
    };
    let downward = sources(&[
        ("", "mod a; mod b; fn main() { a::run() }"),
        (
            "a",
            "use crate::{b::{self, B}, c};\n// crate::a\nmod tests;",
        ),
        ("a::tests", "use crate::a;"),
        (
            "b",
            "#[cfg(test)]\nmod tests { use crate::a::A; }\nconst S: &str = \"see crate::a\";",
        ),
        ("c", "pub mod d; use d::D;"),
        ("c::d", "use super::C;\nfn f() { super::super::b::f() }"),
    ]);
    assert_eq!(
        find_cycles(&module_graph(&downward)),
        Vec::<Vec<String>>::new()
    );

    let mut circle = downward.clone();
    circle.insert("c::d".into(), "fn f() -> u8 { crate::a::F }".into());
    assert_eq!(
        find_cycles(&module_graph(&circle)),
        vec![vec!["a".to_string(), "c".into(), "c::d".into(), "a".into()]]
    );

    let mut serde = downward;
    serde.insert(
        "b".into(),
        "#[serde(with = \"super::a::x\")]\nstruct S;".into(),
    );
    assert_eq!(find_cycles(&module_graph(&serde)).len(), 1);
}

/// One crate of the workspace: its folder (relative to the root), the name
/// other crates import it by, and its `src/`.
struct Crate {
    dir: PathBuf,
    lib_name: String,
}

impl Crate {
    /// The modules of the crate's library (or, without one, its binary):
    /// module path (`k8s::render`, `""` for the root) to source text.
    /// `src/bin/` and a `main.rs` beside a `lib.rs` are left out: each is a
    /// crate of its own, of one file.
    fn modules(&self, root: &Path) -> BTreeMap<String, String> {
        let src = root.join(&self.dir).join("src");
        let has_lib = src.join("lib.rs").exists();
        rust_files(&src)
            .into_iter()
            .filter(|f| !f.starts_with(src.join("bin")))
            .filter(|f| !(has_lib && *f == src.join("main.rs")))
            .map(|f| {
                let text = std::fs::read_to_string(&f).unwrap();
                (module_of(f.strip_prefix(&src).unwrap()), text)
            })
            .collect()
    }

    /// A cycle as its files: `provider/src/types.rs → …`.
    fn show(&self, cycle: &[String]) -> String {
        let src = self.dir.join("src");
        let root = root_file(&repo_root().join(&src));
        let files: Vec<String> = cycle
            .iter()
            .map(|m| {
                if m.is_empty() {
                    return src.join(root).display().to_string();
                }
                let file = src.join(m.replace("::", "/"));
                let flat = file.with_extension("rs");
                if repo_root().join(&flat).exists() {
                    flat.display().to_string()
                } else {
                    file.join("mod.rs").display().to_string()
                }
            })
            .collect();
        files.join(" → ")
    }
}

/// `lib.rs`, or `main.rs` for a crate that is only a binary.
fn root_file(src: &Path) -> &'static str {
    if src.join("lib.rs").exists() {
        "lib.rs"
    } else {
        "main.rs"
    }
}

/// The module a file under `src/` holds: `k8s/render.rs` and
/// `k8s/render/mod.rs` are `k8s::render`, `lib.rs` and `main.rs` the root.
fn module_of(file: &Path) -> String {
    let mut parts: Vec<String> = file
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod")) {
        parts.pop();
    }
    if parts.len() == 1 && (parts[0] == "lib" || parts[0] == "main") {
        parts.clear();
    }
    parts.join("::")
}

/// Every crate of the workspace with a `src/`, found by its `Cargo.toml`.
fn crates(root: &Path) -> Vec<Crate> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let manifest = dir.join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest)
            && let Some(name) = package_name(&text)
            && dir.join("src").is_dir()
        {
            found.push(Crate {
                dir: dir.strip_prefix(root).unwrap().to_path_buf(),
                lib_name: name.replace('-', "_"),
            });
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                dirs.push(path);
            }
        }
    }
    assert!(found.len() >= 8, "only {} crates found", found.len());
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    found
}

/// `name = "…"` of a manifest's `[package]`.
fn package_name(manifest: &str) -> Option<String> {
    let package = manifest.split("[package]").nth(1)?;
    let section = package.split("\n[").next()?;
    let line = section
        .lines()
        .find(|l| l.trim_start().starts_with("name"))?;
    Some(line.split('"').nth(1)?.to_string())
}

/// The `.rs` files under `dir`, skipping build output.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    dirs.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Module → (module it imports → the first path that imports it).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn module_graph(modules: &BTreeMap<String, String>) -> Graph {
    let mut graph = Graph::new();
    for (module, text) in modules {
        let here: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        let arrows = graph.entry(module.clone()).or_default();
        for (path, inline) in paths(&without_test_items(code(text))) {
            let Some(target) = resolve(&here, inline, &path, modules) else {
                continue;
            };
            // A submodule is part of its parent (declared by it, seeing
            // even its private items): `use super::Value` in a parent's
            // helper is no circle, whatever the parent takes from it.
            let ancestor = target.is_empty() || module.starts_with(&format!("{target}::"));
            if target != *module && !ancestor {
                arrows.entry(target).or_insert_with(|| path.join("::"));
            }
        }
    }
    graph
}

/// The module `path`, written in module `here` at `inline` levels of
/// inline `mod … {}`, points at: the longest known module it names. `None`
/// for a path into another crate.
fn resolve(
    here: &[&str],
    inline: usize,
    path: &[String],
    modules: &BTreeMap<String, String>,
) -> Option<String> {
    let mut at: Vec<&str> = here.to_vec();
    let mut rest = path;
    match path[0].as_str() {
        "crate" => {
            at.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            let supers = path.iter().take_while(|s| *s == "super").count();
            // Inline modules first: their `super` is still this file.
            for _ in inline..supers {
                at.pop()?;
            }
            rest = &path[supers..];
        }
        first => {
            let mut child = at.clone();
            child.push(first);
            if !modules.contains_key(&child.join("::")) {
                return None;
            }
        }
    }
    let mut target = at.join("::");
    for segment in rest {
        at.push(segment);
        let longer = at.join("::");
        if !modules.contains_key(&longer) {
            break;
        }
        target = longer;
    }
    Some(target)
}

/// The cycles of `graph`, one per strongly connected component of more
/// than one module: its shortest cycle through its first module, which
/// starts and ends the list.
fn find_cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    for component in components(graph) {
        if component.len() < 2 {
            continue;
        }
        let start = component.iter().next().unwrap();
        // Breadth first inside the component, back to `start`.
        let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(m) = queue.pop_front() {
            for next in graph[m].keys().filter(|n| component.contains(*n)) {
                if next == start {
                    let mut cycle = vec![start.clone()];
                    let mut at = m;
                    while at != start {
                        cycle.push(at.clone());
                        at = came_from[at];
                    }
                    cycle.push(start.clone());
                    cycle.reverse();
                    cycles.push(cycle);
                    break 'search;
                }
                if !came_from.contains_key(next) {
                    came_from.insert(next, m);
                    queue.push_back(next);
                }
            }
        }
    }
    cycles
}

/// The strongly connected components of `graph` (Tarjan).
fn components(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g String, usize>,
        low: BTreeMap<&'g String, usize>,
        stack: Vec<&'g String>,
        on_stack: BTreeSet<&'g String>,
        found: Vec<BTreeSet<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, m: &'g String) {
            let i = self.index.len();
            self.index.insert(m, i);
            self.low.insert(m, i);
            self.stack.push(m);
            self.on_stack.insert(m);
            for next in self.graph[m].keys() {
                // Arrows to modules outside the graph (none, from resolve).
                let Some((next, _)) = self.graph.get_key_value(next) else {
                    continue;
                };
                if !self.index.contains_key(next) {
                    self.visit(next);
                    let low = self.low[m].min(self.low[next]);
                    self.low.insert(m, low);
                } else if self.on_stack.contains(next) {
                    let low = self.low[m].min(self.index[next]);
                    self.low.insert(m, low);
                }
            }
            if self.low[m] == self.index[m] {
                let mut component = BTreeSet::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.insert(top.clone());
                    if top == m {
                        break;
                    }
                }
                self.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for m in graph.keys() {
        if !walk.index.contains_key(m) {
            walk.visit(m);
        }
    }
    walk.found
}

/// A token of the source, comments and literals gone.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of `text` that can make an arrow: identifiers, `::` and
/// punctuation. Comments go; a string literal goes too unless it is a path
/// (`"super::classify::rfc3339_opt"`), which stays as its tokens.
fn code(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' || (c == 'r' && matches!(next, Some('"' | '#'))) {
            // A string, raw (`r#"…"#`) or not; `b` before it is an
            // identifier of its own and harmless.
            let raw = c == 'r';
            let mut hashes = 0;
            if raw {
                i += 1;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if chars.get(i) != Some(&'"') {
                    // `r#ident`: a raw identifier.
                    continue;
                }
            }
            i += 1;
            let start = i;
            while i < chars.len() {
                if !raw && chars[i] == '\\' {
                    i += 2;
                    continue;
                }
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    break;
                }
                i += 1;
            }
            let literal: String = chars[start..i.min(chars.len())].iter().collect();
            i += 1 + hashes;
            let is_path =
                literal.contains("::") && literal.chars().all(|c| ident_char(c) || c == ':');
            if is_path {
                tokens.extend(code(&literal));
            }
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
            }
        } else if (c == 'b' || c == 'c')
            && next == Some('r')
            && matches!(chars.get(i + 2), Some('"' | '#'))
        {
            // `br"…"`, `cr#"…"#`: the raw string from its `r`.
            i += 1;
        } else if ident_char(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c == ':' && next == Some(':') {
            tokens.push(Token::Path);
            i += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    tokens
}

/// `tokens` without the items marked `#[cfg(test)]`.
fn without_test_items(tokens: Vec<Token>) -> Vec<Token> {
    let cfg_test = [
        Token::Punct('#'),
        Token::Punct('['),
        Token::Ident("cfg".into()),
        Token::Punct('('),
        Token::Ident("test".into()),
        Token::Punct(')'),
        Token::Punct(']'),
    ];
    let mut kept = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !tokens[i..].starts_with(&cfg_test) {
            kept.push(tokens[i].clone());
            i += 1;
            continue;
        }
        // The item runs to its `;` or to the `}` closing its first `{`.
        i += cfg_test.len();
        let mut depth = 0;
        while i < tokens.len() {
            match tokens[i] {
                Token::Punct('{') => depth += 1,
                Token::Punct('}') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Token::Punct(';') if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    kept
}

/// Every path the tokens name, `use` trees expanded, each with the number
/// of inline `mod … {}` it is written in.
fn paths(tokens: &[Token]) -> Vec<(Vec<String>, usize)> {
    let mut found = Vec::new();
    // Brace depths at which an inline module's body opened.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('{') => {
                let opens_module = i >= 2
                    && tokens[i - 2] == Token::Ident("mod".into())
                    && matches!(tokens[i - 1], Token::Ident(_));
                depth += 1;
                if opens_module {
                    inline.push(depth);
                }
                i += 1;
            }
            Token::Punct('}') => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth -= 1;
                i += 1;
            }
            Token::Ident(word) if word == "use" => {
                let mut trees = Vec::new();
                i = use_tree(tokens, i + 1, Vec::new(), &mut trees);
                found.extend(trees.into_iter().map(|p| (p, inline.len())));
            }
            // A path's first segment; not one after `>::` (`<T as U>::x`).
            Token::Ident(first)
                if tokens.get(i + 1) == Some(&Token::Path)
                    && (i == 0 || tokens[i - 1] != Token::Path) =>
            {
                let mut path = vec![first.clone()];
                i += 1;
                while tokens.get(i) == Some(&Token::Path) {
                    match tokens.get(i + 1) {
                        Some(Token::Ident(s)) => path.push(s.clone()),
                        _ => break,
                    }
                    i += 2;
                }
                found.push((path, inline.len()));
            }
            _ => i += 1,
        }
    }
    found
}

/// Reads the use tree at `tokens[i]` under `prefix` into `out`; returns
/// where it ends (past its `;`, `,` or `}` is the caller's).
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    // `::a::b` (a leading `::`) names another crate.
    if tokens.get(i) == Some(&Token::Path) {
        i += 1;
    }
    loop {
        match tokens.get(i) {
            Some(Token::Ident(s)) if s == "as" => {
                i += 2; // `as name`
            }
            Some(Token::Ident(s)) => {
                // `{self, …}` is the prefix itself.
                if s != "self" || prefix.is_empty() {
                    prefix.push(s.clone());
                }
                i += 1;
            }
            Some(Token::Path) => i += 1,
            Some(Token::Punct('*')) => i += 1,
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    i = use_tree(tokens, i, prefix.clone(), out);
                    match tokens.get(i) {
                        Some(Token::Punct(',')) => i += 1,
                        _ => break,
                    }
                    if tokens.get(i) == Some(&Token::Punct('}')) {
                        break;
                    }
                }
                // Past the `}`, then the `;` ends the statement.
                i += 1;
                if tokens.get(i) == Some(&Token::Punct(';')) {
                    i += 1;
                }
                return i;
            }
            Some(Token::Punct(';')) => {
                if !prefix.is_empty() {
                    out.push(prefix);
                }
                return i + 1;
            }
            _ => {
                // `,` or `}` of an enclosing group, or the end.
                if !prefix.is_empty() {
                    out.push(prefix);
                }
                return i;
            }
        }
    }
}
