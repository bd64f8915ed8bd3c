# Adopting objects that already exist (created by an earlier apply, or by
# hand with the same names):
#   terraform import beads_autodispatch.this beads-server/beads
# The next plan shows only the attributes where the cluster differs from this file.
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

provider "beads" {
  config_path = var.kubeconfig
}

resource "beads_autodispatch" "this" {
  namespace     = var.namespace
  name          = "beads"
  image         = "ghcr.io/example/beads-runner"
  image_tag     = "0.1.0"
  beadboard_url = "http://beadboard.beads-server.svc.cluster.local"

  dolt {
    host     = "dolt.beads-server.svc.cluster.local"
    database = "beads"
  }
}
