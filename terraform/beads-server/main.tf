# Beads auto-dispatch for the beads-server namespace: the ConfigMap
# beads-metadata and the CronJobs beads-dispatcher / beads-reaper that
# stacks/beads-server declared as kubernetes_config_map and
# kubernetes_cron_job_v1 (name = "beads" renders those same names; see
# docs/migration.md to take them over in place).
#   tg apply -var=beads_dispatcher_enabled=false   # pause
#   tg apply -var=beads_dispatcher_enabled=true    # resume

provider "beads" {
  config_path = var.kube_config_path != "" ? var.kube_config_path : var.kubeconfig
}

resource "beads_autodispatch" "this" {
  namespace          = var.namespace
  name               = "beads"
  enabled            = var.beads_dispatcher_enabled
  mode               = var.mode
  image              = var.runner_image
  image_tag          = var.runner_image_tag
  beadboard_url      = var.beadboard_url
  image_pull_secrets = var.image_pull_secrets

  dolt {
    host                 = var.dolt_host
    port                 = var.dolt_port
    user                 = var.dolt_user
    database             = var.dolt_database
    project_id           = var.dolt_project_id
    password_secret_name = var.dolt_password_secret_name
    password_secret_key  = var.dolt_password_secret_name == null ? null : var.dolt_password_secret_key
  }
}
