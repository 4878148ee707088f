# What infra/deploy reads (terraform output -json).

output "hosts" {
  description = "Every droplet: its role, the address infra/deploy reaches it on, its VPC address."
  value = merge(
    { (digitalocean_droplet.lb.name) = {
      role       = "lb", ssh_address = digitalocean_droplet.lb.ipv4_address,
      private_ip = digitalocean_droplet.lb.ipv4_address_private
    } },
    { for d in digitalocean_droplet.app : d.name => {
      role = "app", ssh_address = d.ipv4_address, private_ip = d.ipv4_address_private
    } },
    { for d in digitalocean_droplet.worker : d.name => {
      role = "worker", ssh_address = d.ipv4_address, private_ip = d.ipv4_address_private
    } },
    { for d in digitalocean_droplet.data : d.name => {
      role = "data", ssh_address = d.ipv4_address, private_ip = d.ipv4_address_private
    } },
  )
}

output "admin_cidrs" {
  value = var.admin_cidrs
}

output "lb_address" {
  description = "The shop's public address (the reserved IP): point your DNS name at it."
  value       = digitalocean_reserved_ip.lb.ip_address
}

output "blob_url" {
  description = "images.blob_url for the api and the workers."
  value       = "s3://${digitalocean_spaces_bucket.blobs.name}/blobs?endpoint=https://${var.region}.digitaloceanspaces.com&region=${var.region}"
}

output "backup_url" {
  description = "Where infra/backup puts the daily backups (the same bucket, another prefix)."
  value       = "s3://${digitalocean_spaces_bucket.blobs.name}/backups?endpoint=https://${var.region}.digitaloceanspaces.com&region=${var.region}"
}

output "data_private_ip" {
  description = "The data droplet's VPC address (MongoDB 27017, Redis 6379), if there is one."
  value       = one(digitalocean_droplet.data[*].ipv4_address_private)
}

output "managed_mongodb_uri" {
  description = "The managed MongoDB's private URI (with its password), if there is one."
  value       = one(digitalocean_database_cluster.mongodb[*].private_uri)
  sensitive   = true
}

output "managed_valkey_uri" {
  description = "The managed Valkey's private URI (rediss://, with its password), if there is one."
  value       = one(digitalocean_database_cluster.valkey[*].private_uri)
  sensitive   = true
}

output "monthly_usd" {
  description = "What the plan costs a month (modules/plan/prices.json)."
  value       = module.plan.monthly_usd
}
