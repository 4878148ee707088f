//! The load balancer as users meet it: a real `lb` process in front of real `api` processes (or a
//! trivial upstream that shows what reached it), all on 127.0.0.1.

mod access_log;
mod admin;
mod balancer;
mod config;
mod discovery;
mod failures;
mod headers;
mod limits;
mod spread;
mod tls;
mod upgrade;
