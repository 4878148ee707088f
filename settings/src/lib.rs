//! How every binary of the project loads its settings: built-in defaults, then a TOML file, then
//! environment variables `PREFIX__SECTION__KEY`. Each binary keeps its own settings structs and
//! checks; this crate only layers the sources, so that all of them behave alike.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A setting that stops start-up; shown as one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// A value that parsed but breaks a rule of the binary.
    pub fn key(key: &str, why: &str) -> Self {
        Self(format!("{key}: {why}"))
    }
}

/// Loads `T::default()` < `file` (if given) < environment variables with `prefix`.
/// Keys in `list_keys` take comma-separated lists from the environment.
pub fn load<T>(file: Option<&Path>, prefix: &str, list_keys: &[&str]) -> Result<T, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let defaults =
        config::Config::try_from(&T::default()).map_err(|e| ConfigError(e.to_string()))?;
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(file) = file {
        builder = builder.add_source(
            config::File::from(file)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let mut environment = config::Environment::with_prefix(prefix)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true);
    if !list_keys.is_empty() {
        environment = environment.list_separator(",");
        for key in list_keys {
            environment = environment.with_list_parse_key(key);
        }
    }
    builder
        .add_source(environment)
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| ConfigError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::load;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        size: u32,
        hosts: Vec<String>,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                name: "default".into(),
                size: 1,
                hosts: vec!["a".into()],
            }
        }
    }

    #[test]
    fn the_file_overrides_the_defaults_and_names_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "size = 7\n").unwrap();
        let loaded: Sample = load(Some(&file), "SETTINGS_TEST_NONE", &[]).unwrap();
        assert_eq!(
            loaded,
            Sample {
                size: 7,
                ..Sample::default()
            }
        );
        std::fs::write(&file, "sise = 7\n").unwrap();
        let error = load::<Sample>(Some(&file), "SETTINGS_TEST_NONE", &[]).unwrap_err();
        assert!(error.to_string().contains("sise"), "{error}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error =
            load::<Sample>(Some("/nonexistent/s.toml".as_ref()), "X_NONE", &[]).unwrap_err();
        assert!(error.to_string().contains("s.toml"), "{error}");
    }
}
