//! What every HTTP handler answers a refusal with: an [`ApiError`] (a status and
//! a JSON [`ApiErrorBody`], with `Retry-After` on a 429), and how a bearer's
//! credentials are read.

use std::net::IpAddr;
use std::time::Duration;

use axum::Json;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chorus_protocol::ApiErrorBody;

use crate::limits::AddressLimits;
use crate::observe::logs::ErrorChain;

/// An HTTP status with a JSON [`ApiErrorBody`] (and `Retry-After`, for a 429).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: ApiErrorBody,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        let body = ApiErrorBody {
            error: error.to_owned(),
            message: message.into(),
            field: None,
        };
        ApiError {
            status,
            body,
            retry_after_secs: None,
        }
    }

    /// 400 `invalid_field`, naming the request field at fault.
    pub(crate) fn invalid_field(field: &'static str, message: impl Into<String>) -> Self {
        let mut error = ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message);
        error.body.field = Some(field.to_owned());
        error
    }

    /// 503 `unavailable`, logging the cause for the operator; the caller gets a
    /// fixed message.
    pub(crate) fn unavailable(what: &str, err: &crate::hub::Unavailable) -> Self {
        tracing::warn!(error = %ErrorChain(err), "{what}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the rooms are unavailable right now; try again shortly",
        )
    }

    /// 429 `rate_limited`, to retry after `wait` (rounded up to whole seconds).
    pub(crate) fn rate_limited(wait: Duration, message: impl Into<String>) -> Self {
        ApiError {
            retry_after_secs: Some(retry_after_secs(wait)),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }
}

/// 429 for a client address that failed to authenticate too often of late
/// (`--failed-auth-limit`), before its credentials are looked at: a right guess
/// then gains nothing either.
pub(crate) fn refuse_failing_address(
    limits: &AddressLimits,
    client: IpAddr,
) -> Result<(), ApiError> {
    match limits.failed_auth.blocked_for(client) {
        None => Ok(()),
        Some(wait) => {
            tracing::debug!("refused an API call: too many failed authentications");
            Err(ApiError::rate_limited(
                wait,
                "too many failed authentications from this address; retry later",
            ))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The credentials of `Authorization: Bearer <credentials>` (the scheme in any
/// case), if there are any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|credentials| !credentials.is_empty())
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use axum::http::header::AUTHORIZATION;

    use super::*;

    #[test]
    fn bearer_credentials() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, value.parse().unwrap());
            bearer(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
    }
}
