#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values
//! The README's Layout table names real places: every path in its first
//! column exists, and every file (`*.rs`) or folder (`…/`) a row names
//! exists in that row's path or its `src/`.

use beads_e2e::repo_root;

/// The backticked words of a Markdown table cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn every_place_the_layout_names_exists() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layout = readme
        .split("## Layout")
        .nth(1)
        .expect("README has a Layout section");
    let rows: Vec<&str> = layout
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter(|l| l.starts_with("| `"))
        .collect();
    assert!(rows.len() >= 8, "{rows:?}");
    let mut checked = 0;
    for row in rows {
        let cells: Vec<&str> = row.split(" | ").collect();
        let dirs = code_spans(cells[0]);
        for dir in &dirs {
            assert!(
                root.join(dir).exists(),
                "{dir} (README Layout) does not exist"
            );
        }
        for name in code_spans(cells.get(1).copied().unwrap_or_default()) {
            if !(name.ends_with(".rs") || name.ends_with('/')) {
                continue;
            }
            let found = dirs.iter().any(|dir| {
                root.join(dir).join(name).exists() || root.join(dir).join("src").join(name).exists()
            });
            assert!(
                found,
                "{name} (README Layout, row {}) does not exist",
                cells[0]
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} names checked");
}
