//! docs/resources/autodispatch.md's argument and attribute tables, made
//! from the schema that [`crate::autodispatch::model`] declares, so the
//! documentation cannot drift from the code. The test below checks the
//! file; `BEADS_UPDATE_DOCS=1 cargo test -p terraform-provider-beads docs`
//! rewrites the generated part.

use tfplugin::schema::{Attribute, Block, Nesting};
use tfplugin::value::Value;

/// The marker lines around the generated part of the page.
const BEGIN: &str =
    "<!-- generated from the schema (provider/src/autodispatch/model.rs): do not edit by hand -->";
const END: &str = "<!-- end of generated part -->";

/// A default as configuration would write it.
fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::List(items) if items.is_empty() => "[]".to_string(),
        other => format!("{other:?}"),
    }
}

/// Text for a Markdown table cell: `<name>` would read as an HTML tag and
/// `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('|', "\\|")
}

fn default_column(a: &Attribute) -> String {
    if a.required {
        return "required".into();
    }
    match (&a.default_doc, &a.default) {
        (Some(text), _) => text.clone(),
        (None, Some(v)) => format!("`{}`", literal(v)),
        (None, None) => "none".into(),
    }
}

fn arguments(block: &Block) -> String {
    let mut out = String::from("| argument | default | description |\n|---|---|---|\n");
    for a in block.attributes.iter().filter(|a| a.required || a.optional) {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            a.name,
            default_column(a),
            cell(&a.description)
        ));
    }
    out
}

/// The generated part of the page: the arguments, each nested block's
/// arguments, and the computed attributes.
pub fn tables(block: &Block) -> String {
    let mut out = String::from(
        "## Arguments\n\nEvery value is checked at plan time; an invalid one is reported at its line\nin the configuration.\n\n",
    );
    out.push_str(&arguments(block));
    for b in &block.blocks {
        let required = if b.min_items > 0 && b.nesting == Nesting::Single {
            " (required)"
        } else {
            ""
        };
        out.push_str(&format!(
            "\n### `{}` block{required}\n\n{}\n\n",
            b.name,
            cell(&b.block.description)
        ));
        out.push_str(&arguments(&b.block));
    }
    out.push_str("\n## Attributes\n\n| attribute | description |\n|---|---|\n");
    for a in block
        .attributes
        .iter()
        .filter(|a| a.computed && !a.optional)
    {
        out.push_str(&format!("| `{}` | {} |\n", a.name, cell(&a.description)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodispatch::Autodispatch;
    use tfplugin::framework::Model;

    #[test]
    fn docs_follow_the_schema() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/resources/autodispatch.md"
        );
        let page = std::fs::read_to_string(path).expect("docs/resources/autodispatch.md");
        let (Some(begin), Some(end)) = (page.find(BEGIN), page.find(END)) else {
            panic!("{path} lacks the markers {BEGIN:?} … {END:?}");
        };
        let generated = format!("{BEGIN}\n{}{END}", tables(&Autodispatch::block()));
        let current = &page[begin..end + END.len()];
        if std::env::var_os("BEADS_UPDATE_DOCS").is_some() {
            let updated = page.replace(current, &generated);
            std::fs::write(path, updated).expect("write docs");
            return;
        }
        assert_eq!(
            current, generated,
            "docs/resources/autodispatch.md is out of date with the schema; \
             run BEADS_UPDATE_DOCS=1 cargo test -p terraform-provider-beads docs"
        );
    }
}
