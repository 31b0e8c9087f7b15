//! A request's body, read only once the handler has checked what the headers
//! allow (the key, the token, the rate): at most [`MAX_BODY_BYTES`], and within the
//! time a request may take, so a client sending a large body slowly holds nothing
//! for long.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt;

use super::error::ApiError;

/// The largest request body the API reads: its largest request, a message of
/// `MAX_CONTENT_CHARS` characters, each escaped as JSON at worst (`\uXXXX`, twice
/// for a character beyond the BMP), fits with room for the other fields.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole body of a request, read within `deadline`: 413 when it is larger than
/// [`MAX_BODY_BYTES`] (said by its `Content-Length`, or found while reading), 408
/// when it has not arrived in time.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    deadline: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(deadline, collect(body)).await {
        Ok(read) => read,
        Err(_) => {
            tracing::debug!("refused a request: its body did not arrive in time");
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs_f64()
                ),
            ))
        }
    }
}

async fn collect(body: Body) -> Result<Bytes, ApiError> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("the request body could not be read: {err}"),
            )
        })?;
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(bytes))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body may be at most {MAX_BODY_BYTES} bytes"),
    )
}
