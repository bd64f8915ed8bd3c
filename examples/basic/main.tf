# The minimum: one beads_autodispatch with its defaults (two CronJobs,
# dispatcher every 2 minutes, reaper every 10).
terraform {
  required_providers {
    beads = {
      source = "beads-autodispatch/beads"
    }
  }
}

variable "kubeconfig" {
  description = "Path of the kubeconfig to use."
  type        = string
  default     = "~/.kube/config"
}

variable "namespace" {
  type    = string
  default = "beads-server"
}

variable "beadboard_url" {
  type    = string
  default = "http://beadboard.beads-server.svc.cluster.local"
}

variable "dolt_host" {
  type    = string
  default = "dolt.beads-server.svc.cluster.local"
}

variable "dolt_port" {
  type    = number
  default = 3306
}

variable "dolt_database" {
  type    = string
  default = "beads"
}

variable "runner_image_tag" {
  type    = string
  default = "0.1.0"
}

provider "beads" {
  config_path = var.kubeconfig
}

resource "beads_autodispatch" "this" {
  namespace     = var.namespace
  image         = "ghcr.io/example/beads-runner"
  image_tag     = var.runner_image_tag
  beadboard_url = var.beadboard_url

  dolt {
    host     = var.dolt_host
    port     = var.dolt_port
    database = var.dolt_database
  }
}

output "dispatcher_cron_job" {
  value = beads_autodispatch.this.dispatcher_cron_job
}

output "reaper_cron_job" {
  value = beads_autodispatch.this.reaper_cron_job
}

output "config_map_name" {
  value = beads_autodispatch.this.config_map_name
}
