//! One `beads_autodispatch` applied with the real Terraform against a
//! cluster, pointed at a beads database and a BeadBoard: the starting point
//! of the tests that run what the provider rendered (as local processes, or
//! inside the runner image).

use std::collections::BTreeMap;

use beads_testkit::BeadsDb;
use serde_json::Value;

use crate::cluster::Cluster;
use crate::terraform::{self, Workspace};

/// The applied resource: its Terraform workspace (kept alive so its temp
/// dir stays), its namespace and the ConfigMaps the rendered pods mount,
/// by name.
pub struct Deployed {
    pub workspace: Workspace,
    pub ns: String,
    pub config_maps: BTreeMap<String, Value>,
}

/// Applies a `beads_autodispatch` in a fresh namespace (created here) with `max_in_flight = 2`, project id `p-123`, the database `db`
/// and the BeadBoard at `board_url`, with the first Terraform of
/// [`terraform::binaries`].
pub fn apply(cluster: &Cluster, db: &BeadsDb, board_url: &str) -> anyhow::Result<Deployed> {
    let ns = cluster.namespace("beads-deployed")?;
    let tf = terraform::binaries().remove(0);
    let workspace = Workspace::new(&tf, &crate::bin_dir())?;
    workspace.write(
        "main.tf",
        &format!(
            r#"{header}
resource "beads_autodispatch" "this" {{
  namespace     = "{ns}"
  image         = "ghcr.io/example/beads-runner"
  beadboard_url = "{board_url}"
  max_in_flight = 2
  dolt {{
    host       = "{host}"
    port       = {port}
    database   = "{database}"
    project_id = "p-123"
  }}
}}
"#,
            header = terraform::header(&format!(
                "  config_path = \"{}\"",
                cluster.kubeconfig.display()
            )),
            host = db.host,
            port = db.port,
            database = db.name,
        ),
    )?;
    workspace.apply(&[])?;
    let cm = cluster
        .get_json(&ns, "configmap", "beads-metadata")?
        .ok_or_else(|| anyhow::anyhow!("ConfigMap {ns}/beads-metadata missing after apply"))?;
    Ok(Deployed {
        workspace,
        ns,
        config_maps: BTreeMap::from([("beads-metadata".to_string(), cm)]),
    })
}
