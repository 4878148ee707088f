# The plan: droplet sizes and counts per role, the optional managed databases, and what it all
# costs a month. No provider: `terraform test` runs it anywhere, and the default plan is checked
# to stay within the budget (tests/budget.tftest.hcl). The root module (infra/digitalocean)
# takes every size and count from here.

terraform {
  required_version = ">= 1.6.0"
}

variable "lb_size" {
  description = "The lb droplet's size (it also runs Prometheus)."
  type        = string
  default     = "s-1vcpu-1gb"
  nullable    = false
}

variable "app_count" {
  description = "App droplets, each running an api and a worker."
  type        = number
  default     = 2
  nullable    = false
  validation {
    condition     = var.app_count >= 1 && var.app_count <= 20
    error_message = "app_count is 1 to 20."
  }
}

variable "app_size" {
  type     = string
  default  = "s-2vcpu-2gb"
  nullable = false
}

variable "worker_count" {
  description = "Droplets running only workers (thumbnails), besides those on the app droplets."
  type        = number
  default     = 0
  nullable    = false
}

variable "worker_size" {
  type     = string
  default  = "s-1vcpu-1gb"
  nullable = false
}

variable "data_size" {
  description = "The data droplet (self-hosted MongoDB and Redis); unused when both are managed."
  type        = string
  default     = "s-1vcpu-2gb"
  nullable    = false
}

variable "managed_mongodb_size" {
  description = "A managed MongoDB cluster's size, or empty for MongoDB on the data droplet."
  type        = string
  default     = ""
  nullable    = false
}

variable "managed_valkey_size" {
  description = "A managed Valkey cluster's size, or empty for Redis on the data droplet."
  type        = string
  default     = ""
  nullable    = false
}

variable "droplet_backups" {
  description = "DigitalOcean's weekly droplet backups on the data droplet (20% of its price)."
  type        = bool
  default     = false
  nullable    = false
}

variable "budget_usd" {
  description = "The monthly budget the plan must stay within."
  type        = number
  default     = 65
  nullable    = false
}

locals {
  prices    = jsondecode(file("${path.module}/prices.json"))
  data_host = var.managed_mongodb_size == "" || var.managed_valkey_size == ""
  droplets = {
    lb     = { size = var.lb_size, count = 1 }
    app    = { size = var.app_size, count = var.app_count }
    worker = { size = var.worker_size, count = var.worker_count }
    data   = { size = var.data_size, count = local.data_host ? 1 : 0 }
  }
  # A size missing from prices.json stops the plan here ("The given key does not identify an
  # element"): add its price first.
  droplet_usd = sum([for role, d in local.droplets : d.count * local.prices.droplets[d.size]])
  database_usd = sum([
    for size in [var.managed_mongodb_size, var.managed_valkey_size] :
    size == "" ? 0 : local.prices.databases[size]
  ])
  backup_usd = (var.droplet_backups && local.data_host
    ? local.prices.droplets[var.data_size] * local.prices.droplet_backups_weekly_share
  : 0)
  monthly_usd = local.droplet_usd + local.database_usd + local.backup_usd + local.prices.spaces
}

output "droplets" {
  description = "Per role: size and count."
  value       = local.droplets
}

output "data_host" {
  description = "Whether a data droplet runs MongoDB and/or Redis."
  value       = local.data_host
}

output "monthly_usd" {
  description = "The plan's monthly price in USD (droplets, managed databases, backups, Spaces)."
  value       = local.monthly_usd
}

output "within_budget" {
  value = local.monthly_usd <= var.budget_usd
}

output "price_source" {
  value = local.prices.source
}
