terraform {
  required_version = ">= 1.6.0"
  required_providers {
    digitalocean = {
      source  = "digitalocean/digitalocean"
      version = "2.78.0"
    }
  }
}

# The token comes from DIGITALOCEAN_TOKEN, Spaces keys from SPACES_ACCESS_KEY_ID and
# SPACES_SECRET_ACCESS_KEY: never from a variable's default or a file in the repository.
provider "digitalocean" {}
