//! Ids in paths (`/orders/{id}`, `/images/{id}`): parsed by an extractor before a handler runs, so
//! a malformed id is a 400 JSON answer, and described once for the OpenAPI document (with the
//! pattern an id must match).

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use super::error::ApiError;
use crate::images::ImageId;
use crate::orders::OrderId;

/// A domain id that may stand in a path.
pub trait PathId: Sized {
    /// What it is called in error messages.
    const WHAT: &'static str;
    /// The hexadecimal digits it has.
    const DIGITS: usize;

    fn parse(text: &str) -> Result<Self, String>;
}

impl PathId for OrderId {
    const WHAT: &'static str = "order id";
    const DIGITS: usize = 24;

    fn parse(text: &str) -> Result<Self, String> {
        OrderId::parse(text)
    }
}

impl PathId for ImageId {
    const WHAT: &'static str = "image id";
    const DIGITS: usize = 32;

    fn parse(text: &str) -> Result<Self, String> {
        ImageId::parse(text)
    }
}

/// The `{id}` of the path, parsed as a `T`.
pub struct IdPath<T>(pub T);

pub type OrderPath = IdPath<OrderId>;
pub type ImagePath = IdPath<ImageId>;

impl<S: Send + Sync, T: PathId> FromRequestParts<S> for IdPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        T::parse(&text)
            .map(Self)
            .map_err(|why| ApiError::BadRequest(format!("malformed {}: {why}", T::WHAT)))
    }
}

impl<T: PathId> IntoParams for IdPath<T> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let digits = T::DIGITS;
        let schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(format!("^[0-9a-fA-F]{{{digits}}}$")));
        vec![
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(format!("The {}: {digits} hex characters", T::WHAT)))
                .schema(Some(schema))
                .build(),
        ]
    }
}
