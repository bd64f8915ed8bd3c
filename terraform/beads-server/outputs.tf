output "namespace" {
  description = "Namespace of the objects."
  value       = beads_autodispatch.this.namespace
}

output "enabled" {
  description = "The kill switch as applied: false means both CronJobs are suspended (or the runner scaled to 0)."
  value       = beads_autodispatch.this.enabled
}

output "mode" {
  description = "cronjob or deployment."
  value       = beads_autodispatch.this.mode
}

output "image" {
  description = "The runner image the pods run."
  value       = "${beads_autodispatch.this.image}${length(regexall("^sha256:", beads_autodispatch.this.image_tag)) > 0 ? "@" : ":"}${beads_autodispatch.this.image_tag}"
}

output "config_map_name" {
  description = "ConfigMap holding metadata.json."
  value       = beads_autodispatch.this.config_map_name
}

output "dispatcher_cron_job" {
  description = "Dispatcher CronJob (null in deployment mode)."
  value       = beads_autodispatch.this.dispatcher_cron_job
}

output "reaper_cron_job" {
  description = "Reaper CronJob (null in deployment mode)."
  value       = beads_autodispatch.this.reaper_cron_job
}

output "metadata_json" {
  description = "The metadata.json the runner reads."
  value       = beads_autodispatch.this.metadata_json
}

output "kubectl_jobs" {
  description = "Lists the dispatcher's recent Jobs (the old stack's `kubectl get jobs | grep beads-dispatcher`)."
  value       = "kubectl -n ${beads_autodispatch.this.namespace} get jobs -l app.kubernetes.io/instance=${beads_autodispatch.this.name},app.kubernetes.io/component=dispatcher --sort-by=.metadata.creationTimestamp"
}

output "pause_command" {
  description = "How to pause from this stack (resume with =true)."
  value       = "tg apply -var=beads_dispatcher_enabled=false"
}
