//! The orders service: the domain (`orders`), where it is kept (`store`), how it is served
//! (`http`), and how a process is configured and started (`config`, `telemetry`, `startup`).

pub mod blobs;
pub mod config;
pub mod http;
pub mod images;
pub mod orders;
pub mod queue;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod worker;
