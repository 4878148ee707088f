//! `api`: serves the orders REST API and the image uploads; `api keys …` manages the API keys
//! in the configured store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use api::auth::manage::{self, Revoked};
use api::auth::{KeyId, KeyName, Scope, Scopes};
use api::config::Section::{Images, Queue, Server, Store};
use api::config::Settings;
use api::startup::Application;
use api::store;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    config: service::ConfigFile,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Makes, lists and revokes API keys, in the store the settings name.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Makes a key and prints it on stdout, this once (only its hash is kept).
    Create {
        /// Who or what the key is for (1 to 100 characters).
        #[arg(long, value_parser = |s: &str| KeyName::parse(s))]
        name: KeyName,
        /// orders:read, orders:write, images:read, images:write or admin (all of them);
        /// repeat the option or separate with commas.
        #[arg(long = "scope", value_name = "SCOPE", required = true, value_delimiter = ',',
              value_parser = Scope::parse)]
        scopes: Vec<Scope>,
        /// When it stops working: a duration from now (30d, 12h) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Write the key to this new file (mode 0600) instead of stdout.
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
    },
    /// Lists every key: id, state, scopes, dates and name (never the key).
    List,
    /// Revokes a key by its id: replicas refuse it within auth.cache_ttl.
    Revoke {
        #[arg(value_name = "ID", value_parser = KeyId::parse)]
        id: KeyId,
    },
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    let metrics = app
        .metrics_addr()
        .map_or_else(|| "none".to_owned(), |addr| addr.to_string());
    tracing::info!(
        addr = %app.local_addr(),
        instance = %settings.server.instance,
        store = %settings.store.redacted_uri(),
        queue = %settings.redacted_queue(),
        auth = if settings.auth.required { "required" } else { "off" },
        %metrics,
        "listening on http://{}",
        app.local_addr()
    );
    app.run_until(service::shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

async fn keys(command: KeysCommand, settings: Settings) -> anyhow::Result<()> {
    let stores = store::open(&settings.store)
        .await
        .with_context(|| format!("opening the store {}", settings.store.redacted_uri()))?;
    let store = &*stores.api_keys;
    let now = Utc::now();
    match command {
        KeysCommand::Create {
            name,
            scopes,
            expires,
            out,
        } => {
            let scopes = Scopes::of(scopes);
            let expires_at = expires
                .map(|text| manage::parse_expiry(&text, now))
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("--expires")?;
            // The file first: a key that cannot be saved is never made.
            let file = out.as_deref().map(new_secret_file).transpose()?;
            let (key, record) = manage::create(store, name, scopes, expires_at, now).await?;
            match file {
                Some(mut file) => writeln!(file, "{}", key.reveal())?,
                None => println!("{}", key.reveal()),
            }
            eprintln!(
                "created API key {} ({}) with {}, {}; the key is shown only this once{}",
                record.id,
                record.name.as_str(),
                record.scopes,
                expiry(record.expires_at),
                out.map_or(String::new(), |path| format!(", in {}", path.display())),
            );
        }
        KeysCommand::List => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<16}  {:<7}  {:<50}  {:<24}  {:<24}  NAME",
                "ID", "STATE", "SCOPES", "CREATED", "EXPIRES"
            )?;
            for key in store.api_keys().await? {
                writeln!(
                    out,
                    "{:<16}  {:<7}  {:<50}  {:<24}  {:<24}  {}",
                    key.id,
                    key.state(now),
                    key.scopes.to_string(),
                    api::orders::to_rfc3339_millis(&key.created_at),
                    key.expires_at
                        .as_ref()
                        .map_or("never".into(), api::orders::to_rfc3339_millis),
                    key.name.as_str().escape_debug(),
                )?;
            }
        }
        KeysCommand::Revoke { id } => match manage::revoke(store, id, now).await? {
            Revoked::Now(record) => eprintln!(
                "revoked API key {id} ({}); replicas refuse it within {}",
                record.name.as_str(),
                humantime::format_duration(settings.auth.cache_ttl)
            ),
            Revoked::Already(record) => eprintln!(
                "API key {id} was already revoked{}",
                record.revoked_at.map_or(String::new(), |at| format!(
                    " at {}",
                    api::orders::to_rfc3339_millis(&at)
                ))
            ),
            Revoked::Unknown => bail!("no API key has the id {id}"),
        },
    }
    Ok(())
}

fn expiry(at: Option<DateTime<Utc>>) -> String {
    at.map_or("no expiry".into(), |at| {
        format!("expires {}", api::orders::to_rfc3339_millis(&at))
    })
}

/// A new file only its owner can read; an existing one is not overwritten.
fn new_secret_file(path: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("--out {}", path.display()))
}

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let binary = service::binary!("Orders REST API and image uploads");
    let cli: Cli = binary.parse();
    match cli.command {
        Some(Command::Keys(command)) => service::run_command(
            "api keys",
            &cli.config,
            |s: &Settings| s.check(&[Store]),
            |settings| keys(command, settings),
        ),
        None => {
            // No worker settings; a queue only if one is configured (without one, uploads
            // answer 503).
            let uses = [Server, Store, Images, Queue];
            service::run_async(
                binary.name,
                &cli.config,
                |s: &Settings| s.check(&uses),
                serve,
            )
        }
    }
}
