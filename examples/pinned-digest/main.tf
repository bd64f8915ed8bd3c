# The runner image pinned by digest instead of a tag: what runs cannot
# change under the same name.
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
  image         = "ghcr.io/example/beads-runner"
  image_tag     = "sha256:4f2a9c1d0e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f"
  beadboard_url = "http://beadboard.beads-server.svc.cluster.local"

  dolt {
    host     = "dolt.beads-server.svc.cluster.local"
    database = "beads"
  }
}
