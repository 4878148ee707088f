//! The start-up sequence every binary follows: settings (exit 2 with one line naming the key when
//! one is bad), then logs, then the binary's own work (exit 1 when it fails), and the signals
//! that ask a process to stop.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::logs::{self, LogSettings, Output};
use crate::settings::{self, ConfigError, Family};

/// A binary's settings: which file family they belong to and where the log settings are.
/// Implemented with [`settings_family!`](crate::settings_family).
pub trait Settings: Default + Serialize + DeserializeOwned {
    const FAMILY: Family;

    fn log(&self) -> &LogSettings;
}

/// Implements [`Settings`] for a settings struct of `family` whose `log` field holds the log
/// settings, as every binary's does.
#[macro_export]
macro_rules! settings_family {
    ($type:ty, $family:ident) => {
        impl $crate::Settings for $type {
            const FAMILY: $crate::Family = $crate::Family::$family;

            fn log(&self) -> &$crate::logs::LogSettings {
                &self.log
            }
        }
    };
}

/// Who a binary is, for its `--help`, `--version` and the lines it writes: see [`binary!`](crate::binary).
pub struct Binary {
    pub name: &'static str,
    pub version: &'static str,
    pub about: &'static str,
}

/// The [`Binary`] being compiled, described by `about`.
#[macro_export]
macro_rules! binary {
    ($about:literal) => {
        $crate::Binary {
            name: env!("CARGO_BIN_NAME"),
            version: env!("CARGO_PKG_VERSION"),
            about: $about,
        }
    };
}

/// The `--config` option every binary takes: flattened into a binary's own arguments, or, for a
/// binary that takes nothing else, parsed alone with [`Binary::config_file`].
#[derive(Debug, clap::Parser)]
pub struct ConfigFile {
    /// TOML settings file (built-in defaults < this file < APP__SECTION__KEY variables).
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
}

impl Binary {
    /// The command line of a binary whose only option is `--config`.
    pub fn config_file(&self) -> ConfigFile {
        self.parse()
    }

    /// The command line as `T` describes it, under this binary's name, version and description.
    pub fn parse<T: clap::Parser>(&self) -> T {
        let command = T::command()
            .name(self.name)
            .version(self.version)
            .about(self.about);
        T::from_arg_matches(&command.get_matches()).unwrap_or_else(|error| error.exit())
    }
}

/// Loads and checks the settings (`check` covers the sections this binary uses), sets up logs
/// on stdout, then runs `main`.
pub fn run<S: Settings>(
    binary: &str,
    file: &ConfigFile,
    check: impl FnOnce(&S) -> Result<(), ConfigError>,
    main: impl FnOnce(S) -> anyhow::Result<()>,
) -> ExitCode {
    run_logging_to(Output::Stdout, binary, file, check, main)
}

fn run_logging_to<S: Settings>(
    output: Output,
    binary: &str,
    file: &ConfigFile,
    check: impl FnOnce(&S) -> Result<(), ConfigError>,
    main: impl FnOnce(S) -> anyhow::Result<()>,
) -> ExitCode {
    let loaded = settings::load::<S>(file.config.as_deref(), S::FAMILY).and_then(|loaded| {
        loaded.settings.log().check()?;
        check(&loaded.settings)?;
        Ok(loaded)
    });
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{binary}: {error}");
            return ExitCode::from(2);
        }
    };
    logs::init(loaded.settings.log(), output);
    for variable in &loaded.skipped {
        tracing::warn!(%variable, "ignored: a setting of another binary of this project");
    }
    match main(loaded.settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // In the log for operators, and on stderr for whoever ran the command.
            tracing::error!(error = format!("{error:#}"), "{binary} failed");
            eprintln!("{binary}: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// [`run`] for a binary whose work is async, on a multi-threaded tokio runtime.
pub fn run_async<S, F>(
    binary: &str,
    file: &ConfigFile,
    check: impl FnOnce(&S) -> Result<(), ConfigError>,
    main: impl FnOnce(S) -> F,
) -> ExitCode
where
    S: Settings,
    F: Future<Output = anyhow::Result<()>>,
{
    run_async_logging_to(Output::Stdout, binary, file, check, main)
}

/// [`run_async`] for a command whose stdout is its answer: its log lines go to stderr.
pub fn run_command<S, F>(
    binary: &str,
    file: &ConfigFile,
    check: impl FnOnce(&S) -> Result<(), ConfigError>,
    main: impl FnOnce(S) -> F,
) -> ExitCode
where
    S: Settings,
    F: Future<Output = anyhow::Result<()>>,
{
    run_async_logging_to(Output::Stderr, binary, file, check, main)
}

fn run_async_logging_to<S, F>(
    output: Output,
    binary: &str,
    file: &ConfigFile,
    check: impl FnOnce(&S) -> Result<(), ConfigError>,
    main: impl FnOnce(S) -> F,
) -> ExitCode
where
    S: Settings,
    F: Future<Output = anyhow::Result<()>>,
{
    run_logging_to(output, binary, file, check, |settings| {
        let runtime = tokio::runtime::Runtime::new()?;
        let outcome = runtime.block_on(main(settings));
        // Blocking work still running (a resize handed back at shutdown) cannot be cancelled and
        // has nobody to report to: the process does not wait for it.
        runtime.shutdown_background();
        outcome
    })
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let interrupt = async {
        tokio::signal::ctrl_c()
            .await
            .expect("installing the SIGINT handler");
    };
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler")
            .recv()
            .await;
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the work in flight");
}
