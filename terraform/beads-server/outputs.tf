output "config_map_name" {
  description = "ConfigMap holding metadata.json."
  value       = beads_autodispatch.this.config_map_name
}

output "dispatcher_cron_job" {
  description = "Dispatcher CronJob (empty in deployment mode)."
  value       = beads_autodispatch.this.dispatcher_cron_job
}

output "reaper_cron_job" {
  description = "Reaper CronJob (empty in deployment mode)."
  value       = beads_autodispatch.this.reaper_cron_job
}

output "metadata_json" {
  description = "The metadata.json the runner reads."
  value       = beads_autodispatch.this.metadata_json
}
