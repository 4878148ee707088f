variable "name" {
  description = "Prefix of every resource's name."
  type        = string
  default     = "shop"
}

variable "region" {
  description = "DigitalOcean region (droplets, VPC, databases and the Spaces bucket)."
  type        = string
  default     = "ams3"
}

variable "vpc_ip_range" {
  type    = string
  default = "10.110.0.0/20"
}

variable "ssh_key_fingerprints" {
  description = "SSH keys (fingerprints, as in the control panel) allowed to log in as root."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "Addresses allowed to SSH to the droplets (infra/deploy runs from one of them)."
  type        = list(string)
  validation {
    condition = length(var.admin_cidrs) > 0 && !contains(var.admin_cidrs, "0.0.0.0/0") && alltrue([
      for c in var.admin_cidrs : can(cidrhost(c, 0)) && !strcontains(c, ":")
    ])
    error_message = "admin_cidrs names your own IPv4 addresses (CIDR), not the whole internet."
  }
}

variable "image" {
  description = "The droplets' image: Debian 12, as the release binaries are built for it."
  type        = string
  default     = "debian-12-x64"
}

variable "spaces_bucket" {
  description = "The Spaces bucket for originals and thumbnails (globally unique name)."
  type        = string
}

# Sizes and counts: null keeps the default plan's (modules/plan), which fits in US$65 a month.
variable "lb_size" {
  type    = string
  default = null
}
variable "app_count" {
  type    = number
  default = null
}
variable "app_size" {
  type    = string
  default = null
}
variable "worker_count" {
  type    = number
  default = null
}
variable "worker_size" {
  type    = string
  default = null
}
variable "data_size" {
  type    = string
  default = null
}
variable "managed_mongodb_size" {
  description = "e.g. db-s-1vcpu-1gb for DigitalOcean's managed MongoDB; empty: on the data droplet."
  type        = string
  default     = null
}
variable "managed_valkey_size" {
  description = "e.g. db-s-1vcpu-1gb for DigitalOcean's managed Valkey; empty: Redis on the data droplet."
  type        = string
  default     = null
}
variable "droplet_backups" {
  type    = bool
  default = null
}
