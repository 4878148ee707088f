//! How every binary loads its settings: built-in defaults, then a TOML file, then environment
//! variables `APP__SECTION__KEY`. Each binary keeps its own settings structs and checks the
//! sections it uses; this module only layers the sources, so that all of them behave alike.
//!
//! The binaries of the api's family (`api`, `worker`, `seed`) read one settings file, `lb` another,
//! and a local stack hands all of them the same environment. So an `APP__` variable is sorted:
//! a key of this binary's file is applied, a key only another binary of the project knows is
//! skipped (and reported, see [`Loaded::skipped`]), and any other key is refused, naming it.

mod catalogue;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The prefix of every settings variable.
const PREFIX: &str = "APP";

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

/// Which settings file a binary reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `api`, `worker` and `seed`: orders, images, queue, worker.
    Api,
    /// `lb`: listeners, upstreams, health checks, timeouts.
    Lb,
}

impl Family {
    const ALL: [Family; 2] = [Family::Api, Family::Lb];

    /// Every key of this family's file, dotted (`server.listen`), sorted.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Family::Api => catalogue::API,
            Family::Lb => catalogue::LB,
        }
    }
}

/// Settings as loaded, with the variables that were set for another binary and skipped.
#[derive(Debug)]
pub struct Loaded<T> {
    pub settings: T,
    /// Names of the `APP__…` variables that belong to another binary of the project.
    pub skipped: Vec<String>,
}

/// Loads `T::default()` < `file` (if given) < this process's `APP__…` variables. Variables that
/// are not Unicode are passed over unless they are settings, which must be.
pub fn load<T>(file: Option<&Path>, family: Family) -> Result<Loaded<T>, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let mut environment = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|name| dotted_key(name).is_some()) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| ConfigError(format!("{name}: the value is not valid UTF-8")))?;
        environment.push((name.to_owned(), value));
    }
    load_from(file, family, environment)
}

/// As [`load`], with the environment given.
pub fn load_from<T>(
    file: Option<&Path>,
    family: Family,
    environment: impl IntoIterator<Item = (String, String)>,
) -> Result<Loaded<T>, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let defaults = T::default();
    let own = keys_of(&defaults);
    let mut applied = BTreeMap::new();
    let mut skipped = Vec::new();
    for (name, value) in environment {
        let Some(key) = dotted_key(&name) else {
            continue;
        };
        if own.contains_key(&key) {
            applied.insert(name, value);
        } else if Family::ALL
            .iter()
            .any(|other| *other != family && other.keys().contains(&key.as_str()))
        {
            skipped.push(name);
        } else {
            return Err(ConfigError(format!(
                "{name}: no such setting ({key}) in any binary of this project"
            )));
        }
    }
    skipped.sort();

    let layered = config::Config::try_from(&defaults).map_err(|e| ConfigError(e.to_string()))?;
    let mut builder = config::Config::builder().add_source(layered);
    if let Some(file) = file {
        builder = builder.add_source(
            config::File::from(file)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let mut environment = config::Environment::with_prefix(PREFIX)
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .source(Some(applied.into_iter().collect()));
    let lists: Vec<&String> = own
        .iter()
        .filter(|(_, list)| **list)
        .map(|(k, _)| k)
        .collect();
    if !lists.is_empty() {
        environment = environment.list_separator(",");
        for key in lists {
            environment = environment.with_list_parse_key(key);
        }
    }
    let settings = builder
        .add_source(environment)
        .build()
        .and_then(config::Config::try_deserialize)
        .map_err(|e| ConfigError(e.to_string()))?;
    Ok(Loaded { settings, skipped })
}

/// `APP__SERVER__BODY_LIMIT` → `server.body_limit`; `None` for other variables.
fn dotted_key(name: &str) -> Option<String> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix("__")?;
    Some(
        rest.split("__")
            .collect::<Vec<_>>()
            .join(".")
            .to_lowercase(),
    )
}

/// Every leaf key of `settings`, dotted, with whether it holds a list (comma-separated in the
/// environment).
pub fn keys_of<T: Serialize>(settings: &T) -> BTreeMap<String, bool> {
    fn walk(prefix: &str, value: &serde_json::Value, keys: &mut BTreeMap<String, bool>) {
        match value {
            serde_json::Value::Object(fields) => {
                for (name, inner) in fields {
                    let key = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    walk(&key, inner, keys);
                }
            }
            leaf => {
                keys.insert(prefix.to_owned(), leaf.is_array());
            }
        }
    }
    let mut keys = BTreeMap::new();
    let value = serde_json::to_value(settings).expect("settings serialize to JSON");
    walk("", &value, &mut keys);
    keys
}

/// Fails when `T`'s keys and `family`'s catalogue disagree, naming the difference: each binary
/// runs this in its tests, so the catalogue cannot drift from the structs.
pub fn check_catalogue<T: Default + Serialize>(family: Family) -> Result<(), String> {
    let actual: Vec<String> = keys_of(&T::default()).into_keys().collect();
    let listed: Vec<String> = family.keys().iter().map(|k| (*k).to_owned()).collect();
    if actual == listed {
        return Ok(());
    }
    let missing: Vec<&String> = actual.iter().filter(|k| !listed.contains(k)).collect();
    let stale: Vec<&String> = listed.iter().filter(|k| !actual.contains(k)).collect();
    Err(format!(
        "service/src/settings/catalogue.rs ({family:?}): add {missing:?}, remove {stale:?}"
    ))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        server: Server,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Server {
        instance: String,
        body_limit: u32,
        listen: Vec<String>,
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                server: Server {
                    instance: "default".into(),
                    body_limit: 1,
                    listen: vec!["a".into()],
                },
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_file_overrides_the_defaults_and_names_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "[server]\nbody_limit = 7\n").unwrap();
        let loaded: Loaded<Sample> = load_from(Some(&file), Family::Api, env(&[])).unwrap();
        assert_eq!(loaded.settings.server.body_limit, 7);
        assert_eq!(loaded.settings.server.instance, "default");
        std::fs::write(&file, "[server]\nbody_limt = 7\n").unwrap();
        let error = load_from::<Sample>(Some(&file), Family::Api, env(&[])).unwrap_err();
        assert!(error.to_string().contains("body_limt"), "{error}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let error =
            load_from::<Sample>(Some("/nonexistent/s.toml".as_ref()), Family::Api, []).unwrap_err();
        assert!(error.to_string().contains("s.toml"), "{error}");
    }

    #[test]
    fn the_environment_overrides_the_file_and_splits_lists() {
        let loaded: Loaded<Sample> = load_from(
            None,
            Family::Api,
            env(&[
                ("APP__SERVER__INSTANCE", "from-env"),
                ("APP__SERVER__LISTEN", "x,y"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.settings.server.instance, "from-env");
        assert_eq!(loaded.settings.server.listen, ["x", "y"]);
        assert!(loaded.skipped.is_empty());
    }

    #[test]
    fn a_key_of_another_binary_is_skipped_and_reported() {
        // `health.path` is a setting of lb, not of this sample.
        let loaded: Loaded<Sample> = load_from(
            None,
            Family::Api,
            env(&[
                ("APP__HEALTH__PATH", "/x"),
                ("APP__SERVER__BODY_LIMIT", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(loaded.skipped, ["APP__HEALTH__PATH"]);
        assert_eq!(loaded.settings.server.body_limit, 3);
    }

    #[test]
    fn a_key_no_binary_knows_is_refused_naming_it() {
        let error = load_from::<Sample>(None, Family::Api, env(&[("APP__SERVER__BODY_LIMT", "3")]))
            .unwrap_err();
        assert!(
            error.to_string().contains("APP__SERVER__BODY_LIMT"),
            "{error}"
        );
        assert!(error.to_string().contains("server.body_limt"), "{error}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let error = load_from::<Sample>(
            None,
            Family::Api,
            env(&[("APP__SERVER__BODY_LIMIT", "lots")]),
        )
        .unwrap_err();
        assert!(error.to_string().contains("server.body_limit"), "{error}");
    }

    #[test]
    fn keys_are_the_leaves_and_lists_are_marked() {
        let keys = keys_of(&Sample::default());
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            [
                ("server.body_limit".to_owned(), false),
                ("server.instance".to_owned(), false),
                ("server.listen".to_owned(), true),
            ]
        );
    }
}
