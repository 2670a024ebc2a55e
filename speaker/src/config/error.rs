//! Diagnostics: every config error or warning names the field path (`peers[1].peer-asn`), says
//! what was wrong, and carries the line and column in the file when they are known.

use std::fmt;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path inside the config YAML, displayed as `address-pools[0].bgp-advertisements[1].localpref`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// This path with a map key appended.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        FieldPath(segs)
    }

    /// This path with a sequence index appended.
    pub fn index(&self, index: usize) -> FieldPath {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        FieldPath(segs)
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
            }
        }
        Ok(())
    }
}

/// A 1-based line and column in the file that was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One error or warning about the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: FieldPath,
    pub message: String,
    pub location: Option<Location>,
}

impl Diagnostic {
    pub fn new(path: FieldPath, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path,
            message: message.into(),
            location: None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_root() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(loc) = self.location {
            write!(f, " (line {}, column {})", loc.line, loc.column)?;
        }
        Ok(())
    }
}

/// Why a config was rejected: every error found (not just the first), plus the warnings found
/// on the way, so `bgplane config check` can print them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl ConfigError {
    pub(crate) fn one(d: Diagnostic) -> ConfigError {
        ConfigError {
            errors: vec![d],
            warnings: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.len() {
            0 => f.write_str("invalid config"),
            1 => write!(f, "invalid config: {}", self.errors[0]),
            n => {
                write!(f, "invalid config ({n} errors):")?;
                for e in &self.errors {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Collects diagnostics while validating.
#[derive(Debug, Default)]
pub(crate) struct Diags {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Diags {
    pub fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.errors.push(Diagnostic::new(path.clone(), message));
    }

    pub fn warn(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.warnings.push(Diagnostic::new(path.clone(), message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_display_mixes_keys_and_indexes() {
        let p = FieldPath::root()
            .key("address-pools")
            .index(0)
            .key("bgp-advertisements")
            .index(2)
            .key("localpref");
        assert_eq!(
            p.to_string(),
            "address-pools[0].bgp-advertisements[2].localpref"
        );
        assert_eq!(FieldPath::root().to_string(), "");
    }

    #[test]
    fn diagnostic_display_has_path_message_and_location() {
        let mut d = Diagnostic::new(
            FieldPath::root().key("peers").index(1).key("peer-asn"),
            "bad",
        );
        assert_eq!(d.to_string(), "peers[1].peer-asn: bad");
        d.location = Some(Location {
            line: 7,
            column: 16,
        });
        assert_eq!(d.to_string(), "peers[1].peer-asn: bad (line 7, column 16)");
    }
}
