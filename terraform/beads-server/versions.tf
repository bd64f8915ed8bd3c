terraform {
  required_version = ">= 1.0"
  required_providers {
    beads = {
      source = "beads-autodispatch/beads"
    }
  }
}
