//! Connections: one URL, UTC session time, errors that carry the server's
//! own words, and no blocking client run inside an async runtime.

use postgres::{Client, NoTls};

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("cannot connect to PostgreSQL at {url}: {reason}; check that the server runs and the URL (user, host, port, database) is right")]
    Connect { url: String, reason: String },
    #[error("PostgreSQL: {0}")]
    Query(String),
}

/// The server's message, detail, hint and SQL state, or the client's error.
pub(crate) fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => error.to_string(),
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A session in UTC: timestamps without a zone in sources are read as UTC
/// instants, as the embedded engine reads them.
pub(crate) fn connect(url: &str) -> Result<Client, PostgresError> {
    let mut client = outside_runtime(|| Client::connect(url, NoTls)).map_err(|e| PostgresError::Connect { url: redact(url), reason: describe(&e) })?;
    outside_runtime(|| client.batch_execute("SET TIME ZONE 'UTC'")).map_err(|e| PostgresError::Query(describe(&e)))?;
    Ok(client)
}

/// Run `work` where the blocking client may start its own runtime: on the
/// calling thread normally, on a scoped thread when called from inside a
/// tokio runtime (the server's scheduled parity check).
pub(crate) fn outside_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(redact("postgresql://bob:s3cret@db:5432/x"), "postgresql://bob:***@db:5432/x");
        assert_eq!(redact("postgresql://127.0.0.1:5432/test"), "postgresql://127.0.0.1:5432/test");
        assert_eq!(redact("postgresql://bob@db/x"), "postgresql://bob@db/x");
    }
}
