//! One error type for every route, rendered as Feast's clients expect:
//! `{"error": ..., "detail": ...}` with a 4xx for anything the caller can
//! fix, 503 only when a store is really down (Feast's client retries 5xx
//! three times and then fails without a message, so a 5xx must mean "try
//! again later", never "your request is wrong").

use std::path::Path;
use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A short stable kind (`bad_request`, `unknown_feature`, ...), also the
    /// `kind` label of the errors metric.
    pub error: &'static str,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        ApiError { status, error, detail: detail.into() }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail)
    }
}

impl From<almanac::Error> for ApiError {
    fn from(error: almanac::Error) -> Self {
        use almanac::Error as E;
        let detail = error.to_string();
        match &error {
            E::Unknown { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail),
            E::NotOnline { .. } => ApiError::new(StatusCode::BAD_REQUEST, "not_online", detail),
            E::BadRequest(message) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message.clone()),
            E::NotApplied => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_applied", detail),
            E::Definitions(_) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail),
            E::Push(_) => ApiError::new(StatusCode::BAD_REQUEST, "bad_push", detail),
            E::Convert(_) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", detail),
            E::Busy { .. } => ApiError::new(StatusCode::CONFLICT, "busy", detail),
            // Stored records disagree with the applied schema: not worth a
            // client retry (a 5xx would be retried); re-materializing fixes it.
            E::OnlineRecord { .. } => ApiError::new(StatusCode::CONFLICT, "stale_records", detail),
            E::Storage(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage", detail),
            _ if error.is_unavailable() => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", detail),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail),
        }
    }
}

/// The server's repo folder as absolute paths (as given and canonical):
/// error details sent to clients name files relative to it, so they do not
/// tell the world how the server's disk is laid out.
static REPO_PATHS: OnceLock<Vec<String>> = OnceLock::new();

/// Set once when the server starts.
pub fn hide_paths_under(root: &Path) {
    let mut paths = Vec::new();
    for path in [std::path::absolute(root).ok(), root.canonicalize().ok()].into_iter().flatten() {
        let text = path.display().to_string();
        if text.len() > 1 && !paths.contains(&text) {
            paths.push(text);
        }
    }
    // Longest first, so a canonical path that extends the given one wins.
    paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let _ = REPO_PATHS.set(paths);
}

fn without_server_paths(detail: &str) -> String {
    let mut out = detail.to_string();
    for path in REPO_PATHS.get().into_iter().flatten() {
        out = out.replace(&format!("{path}/"), "").replace(path.as_str(), ".");
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "detail": without_server_paths(&self.detail)});
        let mut response = (self.status, axum::Json(body)).into_response();
        response.extensions_mut().insert(ErrorKind(self.error));
        response
    }
}

/// Attached to error responses so the metrics layer can count them by kind.
#[derive(Debug, Clone, Copy)]
pub struct ErrorKind(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: internal failures (a poisoned lock, an Arrow kernel on
    /// data Almanac built) were `BadRequest` and answered 400, telling the
    /// client its request was wrong. They are Almanac's fault: 500.
    #[test]
    fn internal_failures_are_never_answered_as_client_errors() {
        let internal = ApiError::from(almanac::Error::Internal("poisoned".into()));
        assert_eq!(internal.status, StatusCode::INTERNAL_SERVER_ERROR);
        let arrow = ApiError::from(almanac::Error::Arrow(arrow::error::ArrowError::ComputeError("x".into())));
        assert_eq!(arrow.status, StatusCode::INTERNAL_SERVER_ERROR);
        let caller = ApiError::from(almanac::Error::BadRequest("no entities".into()));
        assert_eq!(caller.status, StatusCode::BAD_REQUEST);
        let push = ApiError::from(almanac::Error::Push("missing column".into()));
        assert_eq!(push.status, StatusCode::BAD_REQUEST);
        let storage = ApiError::from(almanac::Error::Storage("damaged file".into()));
        assert_eq!(storage.status, StatusCode::INTERNAL_SERVER_ERROR, "a damaged file on the server is not the caller's fault");
    }

    #[test]
    fn details_sent_to_clients_name_no_absolute_server_paths() {
        let root = std::env::temp_dir().join("almanac-redact-test");
        hide_paths_under(&root);
        let detail = format!("cannot write {}/data/x.parquet: disk full", root.display());
        assert_eq!(without_server_paths(&detail), "cannot write data/x.parquet: disk full");
    }
}
