//! The one error type every driver returns, mapped once to HTTP status codes.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Exists,
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("read-only")]
    ReadOnly,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid name or path: {0}")]
    InvalidInput(String),
    #[error("not supported by this drive: {0}")]
    Unsupported(&'static str),
    #[error("rate limited by the provider")]
    RateLimited { retry_after: Option<Duration> },
    #[error("provider error: {0}")]
    Upstream(Upstream),
    #[error("login lost: {0}")]
    AuthLost(String),
    #[error("no space left")]
    NoSpace,
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

pub type DriveResult<T> = Result<T, DriveError>;

/// A provider's own error code (an errno, or a code word such as `TooManyRequests`), kept
/// so that drivers decide on codes, never on the text of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderCode {
    Num(i64),
    Text(String),
}

/// Whether trying the same request again may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Hint {
    /// The provider said no; the same request gets the same answer.
    #[default]
    Permanent,
    /// Network trouble or a provider hiccup (5xx): worth another try.
    Transient,
    /// Short-lived credentials of the request expired (e.g. upload STS keys): renew them
    /// and try again.
    CredentialsExpired,
}

/// A provider failure: what to tell a person, the provider's code, and a retry hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub message: String,
    pub code: Option<ProviderCode>,
    pub hint: Hint,
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl DriveError {
    /// A provider failure described in words.
    pub fn upstream(msg: impl Into<String>) -> DriveError {
        DriveError::Upstream(Upstream { message: msg.into(), code: None, hint: Hint::Permanent })
    }

    /// A failure worth another try (network, 5xx).
    pub fn transient(msg: impl Into<String>) -> DriveError {
        DriveError::Upstream(Upstream { message: msg.into(), code: None, hint: Hint::Transient })
    }

    /// A failure the provider named with `code`.
    pub fn provider(code: ProviderCode, msg: impl Into<String>) -> DriveError {
        DriveError::Upstream(Upstream { message: msg.into(), code: Some(code), hint: Hint::Permanent })
    }

    /// The same error with a retry hint.
    pub fn with_hint(mut self, hint: Hint) -> DriveError {
        if let DriveError::Upstream(u) = &mut self {
            u.hint = hint;
        }
        self
    }

    /// The provider's code, for provider failures that carry one.
    pub fn code(&self) -> Option<&ProviderCode> {
        match self {
            DriveError::Upstream(u) => u.code.as_ref(),
            _ => None,
        }
    }

    /// The retry hint of a provider failure (`Permanent` for every other error).
    pub fn hint(&self) -> Hint {
        match self {
            DriveError::Upstream(u) => u.hint,
            _ => Hint::Permanent,
        }
    }

    /// The HTTP status a WebDAV client should see for this error: the one mapping of
    /// errors to HTTP (dav-server's vocabulary is derived from it, `dav::to_fs_error`).
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            // A path through a file names nothing.
            DriveError::NotFound | DriveError::NotADirectory => S::NOT_FOUND,
            DriveError::Exists => S::METHOD_NOT_ALLOWED,
            DriveError::Forbidden(_) | DriveError::ReadOnly => S::FORBIDDEN,
            DriveError::IsADirectory | DriveError::NotEmpty => S::CONFLICT,
            DriveError::InvalidInput(_) => S::BAD_REQUEST,
            DriveError::Unsupported(_) => S::NOT_IMPLEMENTED,
            DriveError::RateLimited { .. } => S::SERVICE_UNAVAILABLE,
            DriveError::Upstream(_) => S::BAD_GATEWAY,
            DriveError::AuthLost(_) => S::SERVICE_UNAVAILABLE,
            DriveError::NoSpace => S::INSUFFICIENT_STORAGE,
            DriveError::Io(e) => io_status(e),
        }
    }

    /// Seconds a client should wait before retrying, for 503 answers.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DriveError::RateLimited { retry_after } => Some(retry_after.unwrap_or(Duration::from_secs(30))),
            DriveError::AuthLost(_) => Some(Duration::from_secs(300)),
            _ => None,
        }
    }

    /// Errors worth a warning in the log (the rest are a client's normal business).
    pub fn is_server_side(&self) -> bool {
        self.status().is_server_error()
    }

    /// Copy the error for a second consumer (io::Error is not Clone).
    pub fn duplicate(&self) -> DriveError {
        match self {
            DriveError::NotFound => DriveError::NotFound,
            DriveError::Exists => DriveError::Exists,
            DriveError::Forbidden(s) => DriveError::Forbidden(s.clone()),
            DriveError::ReadOnly => DriveError::ReadOnly,
            DriveError::NotADirectory => DriveError::NotADirectory,
            DriveError::IsADirectory => DriveError::IsADirectory,
            DriveError::NotEmpty => DriveError::NotEmpty,
            DriveError::InvalidInput(s) => DriveError::InvalidInput(s.clone()),
            DriveError::Unsupported(s) => DriveError::Unsupported(s),
            DriveError::RateLimited { retry_after } => DriveError::RateLimited { retry_after: *retry_after },
            DriveError::Upstream(s) => DriveError::Upstream(s.clone()),
            DriveError::AuthLost(s) => DriveError::AuthLost(s.clone()),
            DriveError::NoSpace => DriveError::NoSpace,
            DriveError::Io(e) => DriveError::Io(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// The status of a local I/O error, by kind and then by errno (Linux numbers).
fn io_status(e: &std::io::Error) -> http::StatusCode {
    use http::StatusCode as S;
    match e.kind() {
        std::io::ErrorKind::NotFound => return S::NOT_FOUND,
        std::io::ErrorKind::PermissionDenied => return S::FORBIDDEN,
        std::io::ErrorKind::AlreadyExists => return S::METHOD_NOT_ALLOWED,
        _ => {}
    }
    match e.raw_os_error() {
        Some(28) | Some(122) => S::INSUFFICIENT_STORAGE, // ENOSPC, EDQUOT
        Some(36) => S::URI_TOO_LONG,                     // ENAMETOOLONG
        Some(40) => S::LOOP_DETECTED,                    // ELOOP
        Some(20) => S::NOT_FOUND,                        // ENOTDIR: a path through a file
        Some(21) | Some(39) => S::CONFLICT,              // EISDIR, ENOTEMPTY
        Some(30) => S::FORBIDDEN,                        // EROFS
        Some(27) => S::PAYLOAD_TOO_LARGE,                // EFBIG
        _ => S::INTERNAL_SERVER_ERROR,
    }
}
