//! The OpenAPI document, assembled from the handlers' annotations, and the handler that serves it.

use axum::Json;
use utoipa::OpenApi;

use super::{error, images, metrics, operations, orders};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orders API",
        description = "Orders REST API of the shop backend. Every error is JSON with a `message`."
    ),
    paths(
        orders::list,
        orders::show,
        orders::create,
        orders::update,
        orders::remove,
        images::upload::upload,
        images::show,
        images::remove,
        images::original,
        images::thumbnail,
        operations::healthz,
        operations::readyz,
        show,
        metrics::show,
    ),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "orders", description = "Orders of the shop"),
        (name = "images", description = "Uploaded pictures and their thumbnails"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn show() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
