//! RingCentral's error body, as the simulator sends it: `errorCode` and `message` at the
//! top level (as real bodies carry them) plus the spec's `errors[]` array
//! (`ApiErrorResponseModel`), with `parameterName` where RingCentral adds one.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer of the simulated API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// RingCentral error code, e.g. `CMN-102`, `SUB-505`.
    pub code: String,
    /// Human message, worded like RingCentral's.
    pub message: String,
    /// The offending parameter, for 400-style errors.
    pub parameter_name: Option<String>,
    /// The missing permission, for 403 `CMN-408` / `CMN-401` (`permissionName`).
    pub permission_name: Option<String>,
}

impl ApiError {
    /// An error without a parameter name.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            parameter_name: None,
            permission_name: None,
        }
    }

    /// Adds the missing permission's name.
    #[must_use]
    pub fn with_permission(mut self, name: &str) -> Self {
        self.permission_name = Some(name.to_owned());
        self
    }

    /// Adds the parameter name.
    #[must_use]
    pub fn with_parameter(mut self, name: &str) -> Self {
        self.parameter_name = Some(name.to_owned());
        self
    }

    /// `CMN-102` "Resource for parameter [..] is not found" (404).
    pub fn not_found(parameter: &str) -> Self {
        Self::new(
            404,
            "CMN-102",
            format!("Resource for parameter [{parameter}] is not found"),
        )
        .with_parameter(parameter)
    }

    /// `CMN-101` "Parameter [..] value is invalid" (400).
    pub fn invalid_parameter(parameter: &str) -> Self {
        Self::new(
            400,
            "CMN-101",
            format!("Parameter [{parameter}] value is invalid"),
        )
        .with_parameter(parameter)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut item = json!({ "errorCode": self.code, "message": self.message });
        let mut top = json!({ "errorCode": self.code, "message": self.message });
        if let Some(p) = &self.parameter_name {
            item["parameterName"] = json!(p);
            top["parameterName"] = json!(p);
        }
        if let Some(p) = &self.permission_name {
            item["permissionName"] = json!(p);
            top["permissionName"] = json!(p);
        }
        top["errors"] = json!([item]);
        top
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_carries_the_code_at_the_top_and_in_errors() {
        let b = ApiError::not_found("subscriptionId").body();
        assert_eq!(b["errorCode"], "CMN-102");
        assert_eq!(b["errors"][0]["errorCode"], "CMN-102");
        assert_eq!(b["errors"][0]["parameterName"], "subscriptionId");
    }
}
