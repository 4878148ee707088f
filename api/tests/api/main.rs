//! The orders API over real HTTP: each test starts its own server on 127.0.0.1 port 0 with its
//! own temporary SQLite file (in-process), or the real `api` binary where processes matter.

mod helpers;
mod hostile;
mod operations;
mod orders;
mod processes;
mod validation;
