//! The generated parts of docs/resources/autodispatch.md: the argument and
//! attribute tables, made from the schema that
//! [`crate::autodispatch::model`] declares, and the table of every field
//! the provider sets, made from the rendered objects. So the documentation
//! cannot drift from the code. The test below checks the page;
//! `BEADS_UPDATE_DOCS=1 cargo test -p terraform-provider-beads docs`
//! rewrites the generated parts.

use std::collections::BTreeSet;

use tfplugin::schema::{Attribute, Block, Nesting};
use tfplugin::value::Value;

use crate::autodispatch::Autodispatch;
use crate::k8s::project::flatten;
use crate::k8s::render::{self, Kind};
use crate::types::Mode;

/// The marker lines around generated part `id` of the page.
fn markers(id: &str) -> (String, String) {
    (
        format!("<!-- generated ({id}) by provider/src/docs.rs: do not edit by hand -->"),
        format!("<!-- end of generated {id} -->"),
    )
}

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

/// The prefix of the pod template in a CronJob and in a Deployment.
const POD_TEMPLATES: [&str; 2] = ["spec.jobTemplate.spec.template.", "spec.template."];

/// Every field path the provider sets, by row of the fields table: one row
/// per kind of object (identical objects share a row) and one for the pod
/// template, whose paths are given relative to it. `sample` sets every
/// optional input (a password Secret, a pull Secret) so every path renders;
/// its own names are replaced by placeholders.
fn field_rows(sample: &Autodispatch) -> Vec<(String, BTreeSet<String>)> {
    let secret = sample
        .image_pull_secrets
        .names()
        .next()
        .unwrap_or_default()
        .to_string();
    let general = |path: &str| path.replace(&format!("[name={secret}]"), "[name=<secret>]");
    let mut rows: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut pod: BTreeSet<String> = BTreeSet::new();
    for mode in [Mode::CronJob, Mode::Deployment] {
        let state = Autodispatch {
            mode,
            ..sample.clone()
        };
        for object in render::objects(&state) {
            let label = match object.id().kind {
                Kind::ConfigMap => "ConfigMap <name>-metadata",
                Kind::CronJob => "CronJobs <name>-dispatcher, <name>-reaper",
                Kind::Deployment => "Deployment <name>-runner",
            };
            let mut own = BTreeSet::new();
            for path in flatten(&object.to_json()).into_keys() {
                match POD_TEMPLATES.iter().find_map(|p| path.strip_prefix(p)) {
                    Some(inner) => {
                        let only = if mode == Mode::Deployment {
                            " (Deployment)"
                        } else {
                            ""
                        };
                        pod.insert(format!("{}{only}", general(inner)));
                    }
                    None => {
                        own.insert(general(&path));
                    }
                }
            }
            match rows.iter_mut().find(|(l, _)| l == label) {
                Some((_, paths)) => paths.extend(own),
                None => rows.push((label.to_string(), own)),
            }
        }
    }
    // A path both modes set is not Deployment-only.
    let both: BTreeSet<String> = pod
        .iter()
        .filter(|p| !p.ends_with(" (Deployment)"))
        .cloned()
        .collect();
    pod.retain(|p| {
        p.strip_suffix(" (Deployment)")
            .is_none_or(|bare| !both.contains(bare))
    });
    rows.push((
        "pod template (spec.jobTemplate.spec.template of each CronJob, spec.template of the Deployment)".into(),
        pod,
    ));
    rows
}

/// The table of every field the provider sets.
pub fn fields_table(sample: &Autodispatch) -> String {
    let mut out = String::from(
        "| object | fields the provider sets (each shows and is restored) |\n|---|---|\n",
    );
    for (object, paths) in field_rows(sample) {
        let paths: Vec<String> = paths
            .iter()
            .map(|p| match p.strip_suffix(" (Deployment)") {
                Some(bare) => format!("`{bare}` (Deployment)"),
                None => format!("`{p}`"),
            })
            .collect();
        out.push_str(&format!(
            "| {} | {} |\n",
            cell(&object),
            cell(&paths.join(", "))
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfplugin::framework::Model;

    #[test]
    fn docs_follow_the_code() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/resources/autodispatch.md"
        );
        let mut page = std::fs::read_to_string(path).expect("docs/resources/autodispatch.md");
        let sample = crate::k8s::render::tests::spec();
        let parts = [
            ("arguments", tables(&Autodispatch::block())),
            ("fields", fields_table(&sample)),
        ];
        let update = std::env::var_os("BEADS_UPDATE_DOCS").is_some();
        for (id, text) in parts {
            let (begin, end) = markers(id);
            let (Some(b), Some(e)) = (page.find(&begin), page.find(&end)) else {
                panic!("{path} lacks the markers {begin:?} … {end:?}");
            };
            let generated = format!("{begin}\n{text}{end}");
            let current = page[b..e + end.len()].to_string();
            if update {
                page = page.replace(&current, &generated);
                continue;
            }
            assert_eq!(
                current, generated,
                "docs/resources/autodispatch.md ({id}) is out of date with the code; \
                 run BEADS_UPDATE_DOCS=1 cargo test -p terraform-provider-beads docs"
            );
        }
        if update {
            std::fs::write(path, page).expect("write docs");
        }
    }

    #[test]
    fn the_fields_table_lists_every_rendered_path() {
        let sample = crate::k8s::render::tests::spec();
        let rows = field_rows(&sample);
        let listed: usize = rows.iter().map(|(_, p)| p.len()).sum();
        assert!(listed > 60, "{rows:?}");
        let cron = sample.clone().with_computed();
        for fields in cron.objects.expect("objects").values() {
            for path in fields.keys() {
                let inner = POD_TEMPLATES
                    .iter()
                    .find_map(|p| path.strip_prefix(p))
                    .unwrap_or(path)
                    .replace("[name=registry-credentials]", "[name=<secret>]");
                assert!(
                    rows.iter().any(|(_, paths)| paths.contains(&inner)),
                    "{path} is not in the table"
                );
            }
        }
    }
}
