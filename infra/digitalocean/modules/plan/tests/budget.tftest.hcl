# terraform -chdir=infra/digitalocean/modules/plan test

run "the_default_plan_stays_within_65_usd" {
  command = plan
  assert {
    condition     = output.monthly_usd <= 65
    error_message = "The default plan costs ${output.monthly_usd} USD a month, over 65."
  }
}

run "the_default_plan_costs_what_its_parts_cost" {
  command = plan
  # lb 6 + 2 app droplets at 18 + data 12 + Spaces 5.
  assert {
    condition     = output.monthly_usd == 59
    error_message = "Expected 59 USD, got ${output.monthly_usd}."
  }
}

run "managed_databases_replace_the_data_droplet" {
  command = plan
  variables {
    app_size             = "s-1vcpu-2gb"
    managed_mongodb_size = "db-s-1vcpu-1gb"
    managed_valkey_size  = "db-s-1vcpu-1gb"
  }
  # lb 6 + 2 app droplets at 12 + MongoDB 15 + Valkey 15 + Spaces 5.
  assert {
    condition     = output.monthly_usd == 65 && !output.data_host
    error_message = "Expected 65 USD and no data droplet, got ${output.monthly_usd}."
  }
}

run "a_bigger_plan_is_over_budget" {
  command = plan
  variables {
    app_count = 4
  }
  assert {
    condition     = !output.within_budget
    error_message = "Four app droplets should be over the budget."
  }
}

run "zero_app_droplets_are_refused" {
  command = plan
  variables {
    app_count = 0
  }
  expect_failures = [var.app_count]
}
