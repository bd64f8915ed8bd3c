variable "beads_dispatcher_enabled" {
  description = "The kill switch: false suspends both CronJobs (or scales the runner to zero), true resumes."
  type        = bool
  default     = true
}

variable "kubeconfig" {
  description = "Kubeconfig the provider uses; empty means KUBE_CONFIG_PATH or the in-cluster account."
  type        = string
  default     = ""
}

variable "namespace" {
  description = "Namespace of the beads server."
  type        = string
  default     = "beads-server"
}

variable "mode" {
  description = "cronjob (a pod per tick) or deployment (one long-lived runner, no pods when idle)."
  type        = string
  default     = "cronjob"
}

variable "runner_image" {
  description = "Runner image, without tag."
  type        = string
  default     = "ghcr.io/example/beads-runner"
}

variable "runner_image_tag" {
  description = "Runner image tag, or a digest (sha256:...)."
  type        = string
  default     = "0.1.0"
}

variable "beadboard_url" {
  description = "BeadBoard's in-cluster URL."
  type        = string
  default     = "http://beadboard.beads-server.svc.cluster.local"
}

variable "dolt_host" {
  type    = string
  default = "dolt.beads-server.svc.cluster.local"
}

variable "dolt_port" {
  type    = number
  default = 3306
}

variable "dolt_user" {
  type    = string
  default = "root"
}

variable "dolt_database" {
  type    = string
  default = "code"
}

variable "dolt_project_id" {
  description = "beads project id; the runner refuses to touch a database with another metadata._project_id."
  type        = string
  default     = null
}

variable "dolt_password_secret_name" {
  description = "Secret holding the Dolt password (key dolt_password_secret_key); null for none."
  type        = string
  default     = null
}

variable "dolt_password_secret_key" {
  type    = string
  default = "password"
}

variable "image_pull_secrets" {
  type    = list(string)
  default = []
}
