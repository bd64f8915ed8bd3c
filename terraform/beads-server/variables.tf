# Variable names that carry over from stacks/beads-server keep their names
# (beads_dispatcher_enabled); the rest are new. Defaults are today's
# values for beads-server (services-and-infra facts §3.3), so a migrated
# stack needs no tfvars beyond the runner image.

variable "beads_dispatcher_enabled" {
  # The kill switch, same name and meaning as the old stack's: false
  # suspends both CronJobs (or scales the runner to 0), true resumes.
  #
  # Default true. The old stack's default became false (2681f7be) because
  # `tg apply -var=...` overrides are ephemeral and CI or the nightly drift
  # plan re-applies the committed default. It was switched off for an empty
  # queue polled by 864 heavy pods a day and a failure note per tick while
  # BeadBoard was down; the runner is one static binary whose idle tick is
  # one indexed query and no HTTP, and that fails before writing anything
  # when BeadBoard is unreachable. Switching it back on is why this stack
  # exists; pausing is still one variable (commit `false` here to keep it off).
  description = "The kill switch: false suspends both CronJobs (or scales the runner to 0), true resumes. Default true (the old stack's was false)."
  type        = bool
  default     = true
}

variable "kube_config_path" {
  description = "Kubeconfig the provider uses: the old stack's name (terragrunt passes -var kube_config_path=<repo>/config to every stack). Empty: kubeconfig, then KUBE_CONFIG_PATH, then the in-cluster account."
  type        = string
  default     = ""
}

variable "kubeconfig" {
  description = "Kubeconfig used when kube_config_path is empty (this stack's earlier name for it)."
  type        = string
  default     = ""
}

variable "namespace" {
  description = "Namespace of the beads server."
  type        = string
  default     = "beads-server"
}

variable "mode" {
  description = "cronjob (a pod per tick, like the old stack) or deployment (one long-lived runner, no pods when idle)."
  type        = string
  default     = "cronjob"
}

variable "runner_image" {
  description = "Runner image, without tag (replaces claude_agent_service_image_tag: the runner is its own image)."
  type        = string
  default     = "ghcr.io/example/beads-runner"
}

variable "runner_image_tag" {
  description = "Runner image tag, or a digest (sha256:...)."
  type        = string
  default     = "0.1.0"
}

variable "beadboard_url" {
  description = "BeadBoard's in-cluster URL (the old stack's local.beadboard_internal_url)."
  type        = string
  default     = "http://beadboard.beads-server.svc.cluster.local"
}

variable "dolt_host" {
  description = "Dolt SQL server host (metadata.json dolt_server_host)."
  type        = string
  default     = "dolt.beads-server.svc.cluster.local"
}

variable "dolt_port" {
  description = "Dolt SQL server port (dolt_server_port)."
  type        = number
  default     = 3306
}

variable "dolt_user" {
  description = "SQL user (dolt_server_user); beads-server's CronJobs use beads."
  type        = string
  default     = "beads"
}

variable "dolt_database" {
  description = "beads database (dolt_database)."
  type        = string
  default     = "code"
}

variable "dolt_project_id" {
  description = "beads project id (metadata.json project_id); the runner refuses to touch a database with another metadata._project_id. null for no check."
  type        = string
  default     = "a8f8bae7-ce65-4145-a5db-a13d11d297da"
}

variable "dolt_password_secret_name" {
  description = "Secret holding the Dolt password (key dolt_password_secret_key); null for none (beads-server's beads user has an empty password)."
  type        = string
  default     = null
}

variable "dolt_password_secret_key" {
  description = "Key in dolt_password_secret_name."
  type        = string
  default     = "password"
}

variable "image_pull_secrets" {
  description = "Pull secrets for the runner image. The old stack's registry-credentials is not needed for a public image; list it for a private one."
  type        = list(string)
  default     = []
}
