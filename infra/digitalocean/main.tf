# The shop on DigitalOcean: one lb droplet with a reserved IP, app droplets (api + worker),
# optional worker droplets, a data droplet (MongoDB + Redis) unless both are managed, a VPC,
# cloud firewalls per role, and a Spaces bucket. docs/deployment.md walks through it;
# infra/deploy reads the outputs and puts the release on the droplets.

module "plan" {
  source               = "./modules/plan"
  lb_size              = var.lb_size
  app_count            = var.app_count
  app_size             = var.app_size
  worker_count         = var.worker_count
  worker_size          = var.worker_size
  data_size            = var.data_size
  managed_mongodb_size = var.managed_mongodb_size
  managed_valkey_size  = var.managed_valkey_size
  droplet_backups      = var.droplet_backups
}

locals {
  droplets = module.plan.droplets
  units    = "${path.module}/systemd"
  # Every droplet's firewall is made from the same addresses as the cloud firewall's tags; lb's
  # private address and the app droplets' come from the VPC, known only once they exist, so
  # each role's host firewall lists what exists before it (lb, then app and worker, then data),
  # and infra/deploy writes it again with every address at each deploy.
  admin_elements = "elements = { ${join(", ", var.admin_cidrs)} }"

  # cloud-init/droplet.yaml's values per role, as infra/deploy --cloud-init makes them.
  roles = jsondecode(file("${path.module}/cloud-init/roles.json"))
  write_files = { for role, r in local.roles : role => join("", [
    for path, text in merge(
      { for unit in r.units : "/etc/systemd/system/${unit}" => file("${local.units}/${unit}") },
      r.files,
    ) : "  - path: ${path}\n    permissions: \"0644\"\n    content: |\n      ${indent(6, text)}\n"
  ]) if role != "common" }
  user_data = { for role, r in local.roles : role => {
    role     = role
    packages = jsonencode(concat(local.roles.common.packages, r.packages))
    runcmd   = jsonencode(concat(local.roles.common.runcmd, r.runcmd))
    files    = local.write_files[role]
  } if role != "common" }
}

resource "digitalocean_vpc" "shop" {
  name     = "${var.name}-vpc"
  region   = var.region
  ip_range = var.vpc_ip_range
}

resource "digitalocean_tag" "role" {
  for_each = toset(["lb", "app", "worker", "data"])
  name     = "${var.name}-${each.key}"
}

resource "digitalocean_droplet" "lb" {
  name       = "${var.name}-lb"
  region     = var.region
  size       = local.droplets.lb.size
  image      = var.image
  vpc_uuid   = digitalocean_vpc.shop.id
  ssh_keys   = var.ssh_key_fingerprints
  monitoring = true
  ipv6       = false
  tags       = [digitalocean_tag.role["lb"].id]
  user_data = templatefile("${path.module}/cloud-init/droplet.yaml", merge(local.user_data["lb"], {
    firewall = indent(6, templatefile("${path.module}/nftables/common.nft", {
      admin_elements = local.admin_elements
      lb_elements    = ""
      app_elements   = ""
      role_rules     = indent(8, file("${path.module}/nftables/lb.nft"))
    }))
  }))
  # cloud-init runs once; a changed template must not replace a running droplet (infra/deploy
  # keeps the firewall and settings current).
  lifecycle {
    ignore_changes = [user_data, image]
  }
}

resource "digitalocean_reserved_ip" "lb" {
  region = var.region
}

resource "digitalocean_reserved_ip_assignment" "lb" {
  ip_address = digitalocean_reserved_ip.lb.ip_address
  droplet_id = digitalocean_droplet.lb.id
}

resource "digitalocean_droplet" "app" {
  count      = local.droplets.app.count
  name       = "${var.name}-app-${count.index + 1}"
  region     = var.region
  size       = local.droplets.app.size
  image      = var.image
  vpc_uuid   = digitalocean_vpc.shop.id
  ssh_keys   = var.ssh_key_fingerprints
  monitoring = true
  tags       = [digitalocean_tag.role["app"].id]
  user_data = templatefile("${path.module}/cloud-init/droplet.yaml", merge(local.user_data["app"], {
    firewall = indent(6, templatefile("${path.module}/nftables/common.nft", {
      admin_elements = local.admin_elements
      lb_elements    = "elements = { ${digitalocean_droplet.lb.ipv4_address_private} }"
      app_elements   = ""
      role_rules     = indent(8, file("${path.module}/nftables/app.nft"))
    }))
  }))
  lifecycle {
    ignore_changes = [user_data, image]
  }
}

resource "digitalocean_droplet" "worker" {
  count      = local.droplets.worker.count
  name       = "${var.name}-worker-${count.index + 1}"
  region     = var.region
  size       = local.droplets.worker.size
  image      = var.image
  vpc_uuid   = digitalocean_vpc.shop.id
  ssh_keys   = var.ssh_key_fingerprints
  monitoring = true
  tags       = [digitalocean_tag.role["worker"].id]
  user_data = templatefile("${path.module}/cloud-init/droplet.yaml", merge(local.user_data["worker"], {
    firewall = indent(6, templatefile("${path.module}/nftables/common.nft", {
      admin_elements = local.admin_elements
      lb_elements    = "elements = { ${digitalocean_droplet.lb.ipv4_address_private} }"
      app_elements   = ""
      role_rules     = indent(8, file("${path.module}/nftables/worker.nft"))
    }))
  }))
  lifecycle {
    ignore_changes = [user_data, image]
  }
}

locals {
  app_and_worker_ips = concat(digitalocean_droplet.app[*].ipv4_address_private,
  digitalocean_droplet.worker[*].ipv4_address_private)
}

resource "digitalocean_droplet" "data" {
  count      = local.droplets.data.count
  name       = "${var.name}-data"
  region     = var.region
  size       = local.droplets.data.size
  image      = var.image
  vpc_uuid   = digitalocean_vpc.shop.id
  ssh_keys   = var.ssh_key_fingerprints
  monitoring = true
  backups    = var.droplet_backups == true
  tags       = [digitalocean_tag.role["data"].id]
  user_data = templatefile("${path.module}/cloud-init/droplet.yaml", merge(local.user_data["data"], {
    firewall = indent(6, templatefile("${path.module}/nftables/common.nft", {
      admin_elements = local.admin_elements
      lb_elements    = "elements = { ${digitalocean_droplet.lb.ipv4_address_private} }"
      app_elements   = "elements = { ${join(", ", local.app_and_worker_ips)} }"
      role_rules     = indent(8, file("${path.module}/nftables/data.nft"))
    }))
  }))
  lifecycle {
    ignore_changes = [user_data, image]
  }
}

# Cloud firewalls: the first wall, by tag; each droplet's nftables is the second.
resource "digitalocean_firewall" "lb" {
  name = "${var.name}-lb"
  tags = [digitalocean_tag.role["lb"].id]
  inbound_rule {
    protocol         = "tcp"
    port_range       = "80"
    source_addresses = ["0.0.0.0/0", "::/0"]
  }
  inbound_rule {
    protocol         = "tcp"
    port_range       = "443"
    source_addresses = ["0.0.0.0/0", "::/0"]
  }
  inbound_rule {
    protocol         = "tcp"
    port_range       = "22"
    source_addresses = var.admin_cidrs
  }
  dynamic "outbound_rule" {
    for_each = ["tcp", "udp"]
    content {
      protocol              = outbound_rule.value
      port_range            = "1-65535"
      destination_addresses = ["0.0.0.0/0", "::/0"]
    }
  }
  outbound_rule {
    protocol              = "icmp"
    destination_addresses = ["0.0.0.0/0", "::/0"]
  }
}

resource "digitalocean_firewall" "app" {
  name = "${var.name}-app"
  tags = [digitalocean_tag.role["app"].id, digitalocean_tag.role["worker"].id]
  # The api from lb; metrics (api 9464, worker 9100, node_exporter 9101) from Prometheus on lb.
  dynamic "inbound_rule" {
    for_each = ["8080", "9464", "9100", "9101"]
    content {
      protocol    = "tcp"
      port_range  = inbound_rule.value
      source_tags = [digitalocean_tag.role["lb"].id]
    }
  }
  inbound_rule {
    protocol         = "tcp"
    port_range       = "22"
    source_addresses = var.admin_cidrs
  }
  dynamic "outbound_rule" {
    for_each = ["tcp", "udp"]
    content {
      protocol              = outbound_rule.value
      port_range            = "1-65535"
      destination_addresses = ["0.0.0.0/0", "::/0"]
    }
  }
}

resource "digitalocean_firewall" "data" {
  count = local.droplets.data.count
  name  = "${var.name}-data"
  tags  = [digitalocean_tag.role["data"].id]
  dynamic "inbound_rule" {
    for_each = ["27017", "6379"]
    content {
      protocol    = "tcp"
      port_range  = inbound_rule.value
      source_tags = [digitalocean_tag.role["app"].id, digitalocean_tag.role["worker"].id]
    }
  }
  inbound_rule {
    protocol    = "tcp"
    port_range  = "9101"
    source_tags = [digitalocean_tag.role["lb"].id]
  }
  inbound_rule {
    protocol         = "tcp"
    port_range       = "22"
    source_addresses = var.admin_cidrs
  }
  dynamic "outbound_rule" {
    for_each = ["tcp", "udp"]
    content {
      protocol              = outbound_rule.value
      port_range            = "1-65535"
      destination_addresses = ["0.0.0.0/0", "::/0"]
    }
  }
}

# Managed databases, when sized: in the VPC, reachable only from app and worker droplets.
resource "digitalocean_database_cluster" "mongodb" {
  count                = var.managed_mongodb_size == null || var.managed_mongodb_size == "" ? 0 : 1
  name                 = "${var.name}-mongodb"
  engine               = "mongodb"
  version              = "7"
  size                 = var.managed_mongodb_size
  region               = var.region
  node_count           = 1
  private_network_uuid = digitalocean_vpc.shop.id
}

resource "digitalocean_database_cluster" "valkey" {
  count                = var.managed_valkey_size == null || var.managed_valkey_size == "" ? 0 : 1
  name                 = "${var.name}-valkey"
  engine               = "valkey"
  version              = "8"
  size                 = var.managed_valkey_size
  region               = var.region
  node_count           = 1
  private_network_uuid = digitalocean_vpc.shop.id
  eviction_policy      = "noeviction"
}

# Who may reach a managed database: app and worker droplets, and the data droplet's backup
# (mongodump) when it hosts the other store.
locals {
  database_clients = concat(["app", "worker"], local.droplets.data.count > 0 ? ["data"] : [])
}

resource "digitalocean_database_firewall" "mongodb" {
  count      = length(digitalocean_database_cluster.mongodb)
  cluster_id = digitalocean_database_cluster.mongodb[count.index].id
  dynamic "rule" {
    for_each = local.database_clients
    content {
      type  = "tag"
      value = digitalocean_tag.role[rule.value].id
    }
  }
}

resource "digitalocean_database_firewall" "valkey" {
  count      = length(digitalocean_database_cluster.valkey)
  cluster_id = digitalocean_database_cluster.valkey[count.index].id
  dynamic "rule" {
    for_each = local.database_clients
    content {
      type  = "tag"
      value = digitalocean_tag.role[rule.value].id
    }
  }
}

resource "digitalocean_spaces_bucket" "blobs" {
  name   = var.spaces_bucket
  region = var.region
  acl    = "private"
  # Multipart uploads an interrupted api left behind are removed after a day.
  lifecycle_rule {
    enabled                                = true
    abort_incomplete_multipart_upload_days = 1
  }
}

resource "digitalocean_project" "shop" {
  name        = var.name
  description = "The shop: orders API, image resizing, load balancer."
  purpose     = "Web Application"
  environment = "Production"
  resources = concat(
    [digitalocean_droplet.lb.urn, digitalocean_reserved_ip.lb.urn, digitalocean_spaces_bucket.blobs.urn],
    digitalocean_droplet.app[*].urn,
    digitalocean_droplet.worker[*].urn,
    digitalocean_droplet.data[*].urn,
    digitalocean_database_cluster.mongodb[*].urn,
    digitalocean_database_cluster.valkey[*].urn,
  )
}
