//! RFC 9457 problem details. Every API error leaves through here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use saphan_core::{Problem, Text};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// The body of a problem response. `title`/`detail` are English (for developers and tools);
/// `title_th`/`detail_th` carry the Thai text for people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProblemDocument {
    /// A URI reference naming the problem type; dereferences to a page describing it.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub title_th: String,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_th: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A problem on its way out as an HTTP response.
#[derive(Debug, Clone)]
pub struct ApiProblem(pub Problem);

impl From<Problem> for ApiProblem {
    fn from(p: Problem) -> Self {
        ApiProblem(p)
    }
}

/// The digital ID's errors describe themselves; handlers can use `?` on them.
impl From<saphan_identity::IdentityError> for ApiProblem {
    fn from(e: saphan_identity::IdentityError) -> Self {
        ApiProblem(e.problem())
    }
}

impl ApiProblem {
    pub fn status(status: u16) -> ApiProblem {
        ApiProblem(Problem::for_status(status))
    }

    pub fn with_detail(self, detail: Text) -> ApiProblem {
        ApiProblem(self.0.with_detail(detail))
    }

    pub(crate) fn document(
        &self,
        instance: Option<String>,
        request_id: Option<String>,
    ) -> ProblemDocument {
        let p = &self.0;
        ProblemDocument {
            type_: format!("/problems/{}", p.slug),
            title: p.title.en.to_string(),
            title_th: p.title.th.to_string(),
            status: p.status(),
            detail: p.detail.as_ref().map(|d| d.en.to_string()),
            detail_th: p.detail.as_ref().map(|d| d.th.to_string()),
            instance,
            request_id,
        }
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // instance and request_id are filled in by the problem middleware, which knows the request.
        let body = serde_json::to_vec(&self.document(None, None)).expect("problem serialises");
        let mut response = (status, body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response.extensions_mut().insert(self);
        response
    }
}
