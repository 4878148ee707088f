//! `seed`: loads the sample orders into the configured store, or resets it to them.
//!
//! It reads the same settings file as the api (defaults < `--config` file < `APP__…` variables),
//! so it fills whichever store the api would use; it checks only the store's settings.

mod data;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use api::config::{Section, Settings};
use api::store::{self, StoreError};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    version,
    about = "Loads the sample order data set into the configured store"
)]
struct Args {
    /// The api's settings file (the store is read from it).
    #[command(flatten)]
    config: service::ConfigFile,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Adds the first COUNT sample orders to the store (fails if they are already there).
    Load(LoadArgs),
    /// Removes every order, then loads the first COUNT sample orders: a known state.
    Reset(LoadArgs),
    /// Removes every order.
    Clear,
}

#[derive(clap::Args)]
struct LoadArgs {
    /// How many orders.
    #[arg(long, default_value_t = 10_000)]
    count: u32,
    /// Orders written per transaction or bulk request.
    #[arg(long, default_value_t = 5_000)]
    batch: u32,
    /// No progress bar (for logs and CI).
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    service::run_async(
        "seed",
        &args.config,
        |settings: &Settings| settings.check(&[Section::Store]),
        |settings| run(args.command, settings),
    )
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let store = store::open(&settings.store)
        .await
        .with_context(|| format!("opening {}", settings.store.redacted_uri()))?
        .orders;
    match command {
        Command::Clear => store.clear().await?,
        Command::Reset(load_args) => {
            store.clear().await?;
            load(&*store, &load_args).await?;
        }
        Command::Load(load_args) => load(&*store, &load_args).await?,
    }
    Ok(())
}

async fn load(store: &dyn store::OrderStore, args: &LoadArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(u64::from(args.count))
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} orders  {per_sec}  eta {eta}")
            .expect("a valid template"),
    );
    let batch = args.batch.max(1);
    let mut start = 0;
    while start < args.count {
        let end = args.count.min(start.saturating_add(batch));
        let orders: Vec<_> = (start..end).map(data::order).collect();
        match store.insert_many(&orders).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                bail!("the sample orders are already loaded: use `seed reset` to start over")
            }
            Err(error) => return Err(error.into()),
        }
        progress.inc(u64::from(end - start));
        start = end;
    }
    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "loaded {} orders in {seconds:.1} s ({:.0} orders/s)",
        args.count,
        f64::from(args.count) / seconds.max(1e-9)
    );
    Ok(())
}
