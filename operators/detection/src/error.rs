//! Error and rejection types of the detection crate.

use std::fmt;
use std::path::PathBuf;

/// A rule, filter, correlation or pipeline that could not be put in force, and why.
///
/// Nothing is dropped silently: every document the loader or the compiler cannot support ends
/// up as one of these, with the file it came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Rejection {
    /// The file the document came from.
    pub file: PathBuf,
    /// The document's `id` (else its `name`), when it has one.
    pub rule_id: Option<String>,
    /// The document's `title`, when it has one.
    pub title: Option<String>,
    /// Why it was rejected.
    pub reason: String,
}

impl fmt::Display for Rejection {
    /// `file: rule id: reason` (`-` for a missing id), the form `securewatch rules check` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.rule_id.as_deref().unwrap_or("-");
        write!(f, "{}: {id}: {}", self.file.display(), self.reason)?;
        if let Some(title) = &self.title {
            write!(f, " (title: {title})")?;
        }
        Ok(())
    }
}

/// A document that loaded, but only after SecureWatch repaired it (today: a missing `title`
/// replaced by a stand-in); reported wherever rejections are.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct LoadWarning {
    /// The file the document came from.
    pub file: PathBuf,
    /// The document's `id` (else its `name`), when it has one.
    pub rule_id: Option<String>,
    /// What was repaired, e.g. `no title; using internal_error`.
    pub message: String,
}

impl fmt::Display for LoadWarning {
    /// `file: rule id: message` (`-` for a missing id), as `securewatch rules check` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.rule_id.as_deref().unwrap_or("-");
        write!(f, "{}: {id}: {}", self.file.display(), self.message)
    }
}

/// Errors of the detection crate that stop a whole operation (not one rule).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DetectionError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A processing pipeline could not be parsed or uses something we do not support.
    #[error("pipeline {origin}: {reason}")]
    Pipeline {
        /// The file name, or `builtin:<name>`.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// A log source given as text (`product=windows,category=process_creation`) is malformed.
    #[error("invalid log source {text:?}: {reason}")]
    LogSource {
        /// The text.
        text: String,
        /// What is wrong.
        reason: String,
    },
}
