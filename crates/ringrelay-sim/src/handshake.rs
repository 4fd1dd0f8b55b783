//! The validation handshake RingCentral performs when a webhook subscription is created
//! (fact sheet §3.1): a POST to the address with a `Validation-Token` header, which must be
//! answered 200 with the token echoed in a response header, within 3 s, in at most
//! 1024 bytes of headers plus body, with `Content-Type: application/json`.

use crate::error::ApiError;
use crate::state::SimState;

/// The largest handshake answer accepted, headers plus body.
pub const MAX_HANDSHAKE_BYTES: usize = 1024;

fn not_returned() -> ApiError {
    ApiError::new(400, "SUB-520", "Validation Token is not returned")
}

fn invalid(why: &str) -> ApiError {
    ApiError::new(
        400,
        "SUB-525",
        format!("WebHook server response is invalid: {why}"),
    )
}

/// Runs the handshake against `address`.
///
/// # Errors
/// 400 SUB-520 when the endpoint is unreachable, slow, answers non-200 or does not echo
/// the token; 400 SUB-525 when the answer is too large or not `application/json`.
pub(crate) async fn handshake(state: &SimState, address: &str) -> Result<(), ApiError> {
    let token = uuid::Uuid::new_v4().to_string();
    let send = state
        .http
        .post(address)
        .header("Validation-Token", &token)
        .header("User-Agent", "RingCentral-Webhook/8.3")
        .send();
    let work = async {
        let response = send.await.map_err(|e| {
            tracing::debug!(error = %e, "handshake request failed");
            not_returned()
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(|_| not_returned())?;
        Ok::<_, ApiError>((status, headers, body))
    };
    let (status, headers, body) = tokio::time::timeout(state.config.handshake_timeout, work)
        .await
        .map_err(|_| not_returned())??;
    if status != 200 {
        return Err(not_returned());
    }
    let echoed = headers
        .get("validation-token")
        .and_then(|v| v.to_str().ok());
    if echoed != Some(token.as_str()) {
        return Err(not_returned());
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_bytes + body.len() > MAX_HANDSHAKE_BYTES {
        return Err(invalid("response is larger than 1024 bytes"));
    }
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !json {
        return Err(invalid("Content-Type is not application/json"));
    }
    Ok(())
}
