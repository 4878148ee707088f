//! What a key may do: a set of scopes, each naming a resource and a kind of access.

use std::fmt;

/// One permission. `admin` holds every other scope, and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    OrdersRead,
    OrdersWrite,
    ImagesRead,
    ImagesWrite,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::ImagesRead,
        Scope::ImagesWrite,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::OrdersRead => "orders:read",
            Scope::OrdersWrite => "orders:write",
            Scope::ImagesRead => "images:read",
            Scope::ImagesWrite => "images:write",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown scope {:?}: one of {}",
                    text.chars().take(40).collect::<String>(),
                    known.join(", ")
                )
            })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scopes a key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn of(scopes: impl IntoIterator<Item = Scope>) -> Self {
        Self(scopes.into_iter().fold(0, |bits, s| bits | s.bit()))
    }

    /// Parses stored or typed names (`orders:read`, …); a set must not be empty.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut scopes = Self::default();
        for name in names {
            scopes.0 |= Scope::parse(name.trim())?.bit();
        }
        if scopes.is_empty() {
            return Err("at least one scope is needed".into());
        }
        Ok(scopes)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a holder may do what `needed` allows: it holds it, or holds `admin`.
    pub fn allow(self, needed: Scope) -> bool {
        self.0 & (needed.bit() | Scope::Admin.bit()) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_allows_everything_and_a_scope_only_itself() {
        let admin = Scopes::of([Scope::Admin]);
        assert!(Scope::ALL.iter().all(|s| admin.allow(*s)));
        let read = Scopes::of([Scope::OrdersRead]);
        assert!(read.allow(Scope::OrdersRead));
        for other in [
            Scope::OrdersWrite,
            Scope::ImagesRead,
            Scope::ImagesWrite,
            Scope::Admin,
        ] {
            assert!(!read.allow(other), "{other}");
        }
    }

    #[test]
    fn names_round_trip_and_strangers_are_refused() {
        let scopes = Scopes::parse(["images:write", "orders:read"]).unwrap();
        assert_eq!(scopes.to_string(), "orders:read,images:write");
        assert_eq!(Scopes::parse(scopes.names()).unwrap(), scopes);
        assert!(
            Scopes::parse(["orders:delete"])
                .unwrap_err()
                .contains("unknown scope")
        );
        assert!(Scopes::parse(["ADMIN"]).is_err());
        assert!(Scopes::parse([]).is_err());
    }
}
