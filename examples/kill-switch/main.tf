# The kill switch: `terraform apply -var=beads_dispatcher_enabled=false`
# suspends both CronJobs (or scales the Deployment to zero); `=true` resumes.
terraform {
  required_providers {
    beads = {
      source = "beads-autodispatch/beads"
    }
  }
}

variable "kubeconfig" {
  type    = string
  default = "~/.kube/config"
}

variable "namespace" {
  type    = string
  default = "beads-server"
}

variable "beads_dispatcher_enabled" {
  description = "false suspends auto-dispatch without deleting anything."
  type        = bool
  default     = true
}

provider "beads" {
  config_path = var.kubeconfig
}

resource "beads_autodispatch" "this" {
  namespace     = var.namespace
  enabled       = var.beads_dispatcher_enabled
  image         = "ghcr.io/example/beads-runner"
  image_tag     = "0.1.0"
  beadboard_url = "http://beadboard.beads-server.svc.cluster.local"

  dolt {
    host     = "dolt.beads-server.svc.cluster.local"
    database = "beads"
  }
}
