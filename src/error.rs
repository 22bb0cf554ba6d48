//! The one error type of the core. Each error carries the kind the C boundary maps to a
//! numbered result, and a message written for the PBX administrator who will read it in
//! `gi_last_error`: what went wrong and what to do. Messages never contain a token, a client
//! secret or an authorization code; callers build them from fixed text and identifiers only.

use std::fmt;

/// What went wrong, in the terms of the contract's result codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    BufferTooSmall,
    State,
    Denied,
    Google,
    Network,
    Storage,
    Config,
    Internal,
}

#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub fn config(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Config, message)
    }

    pub fn storage(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Storage, message)
    }

    pub fn google(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Google, message)
    }

    pub fn network(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Network, message)
    }

    /// The same error, told with what was being done before it and advice after it.
    pub fn with_context(self, doing: impl AsRef<str>, advice: &str) -> Error {
        Error {
            kind: self.kind,
            message: format!("{}: {}{advice}", doing.as_ref(), self.message),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        // Values travel as bound parameters, and the server's messages name tables and keys,
        // so the text names the failure, never a token or the store's password.
        Error::storage(format!(
            "the PostgreSQL store failed ({}); check the server's log, and that this node's user may write the plugin's tables",
            pg_cause(&e)
        ))
    }
}

/// A PostgreSQL error with its causes ("error connecting to server: Connection refused"):
/// its own text alone often leaves the cause out.
pub fn pg_cause(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    // rustls refusing the server's certificate ("invalid peer certificate: UnknownIssuer"):
    // the usual cause is a private CA or a self-signed server (Debian's default), which the
    // web's roots do not cover.
    if text.contains("invalid peer certificate") {
        text.push_str(
            "; the server's TLS certificate is not one this node trusts: name the file of its CA's certificate (PEM) with sslrootcert=/path/to/ca.pem in the store URL",
        );
    }
    text
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        // Statements only ever carry values as bound parameters, so the text of a SQLite
        // error names the failure, never a stored token.
        Error::storage(format!(
            "the plugin's database failed ({e}); check that data_dir is writable and the disk is not full"
        ))
    }
}
