//! The OpenAPI document, assembled from the handlers' annotations and completed with what the
//! annotations cannot say (patterns shared with the domain's rules, closed bodies, links between
//! operations), and the handler that serves it.

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::orders::body::{MULTI_LINE_PATTERN, ONE_LINE_PATTERN};
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

/// The document as served.
pub fn document() -> Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
        complete(&mut document);
        document
    });
    DOCUMENT.clone()
}

/// Adds what the annotations cannot express.
fn complete(document: &mut Value) {
    let text_patterns = [
        ("product", ONE_LINE_PATTERN),
        ("customer_name", ONE_LINE_PATTERN),
        ("customer_address", MULTI_LINE_PATTERN),
    ];
    let schemas = &mut document["components"]["schemas"];
    for name in ["OrderInput", "OrderChangesInput"] {
        let schema = &mut schemas[name];
        // Unknown fields are refused with 422.
        schema["additionalProperties"] = json!(false);
        for (field, pattern) in text_patterns {
            schema["properties"][field]["pattern"] = json!(pattern);
        }
    }
    // The same fields and rules; none required, one at least, and never null.
    schemas["OrderChangesInput"]["properties"] = schemas["OrderInput"]["properties"].clone();
    schemas["OrderChangesInput"]["minProperties"] = json!(1);
    let upload = &mut schemas["UploadForm"];
    upload["additionalProperties"] = json!(false);
    upload["properties"]["file"]["minLength"] = json!(1);
    document["paths"]["/images"]["post"]["requestBody"]["content"]["multipart/form-data"]["encoding"] =
        json!({"file": {"contentType": "image/jpeg, image/png, image/webp"}});
    if let Some(parameters) = document["paths"]["/orders"]["get"]["parameters"].as_array_mut() {
        for parameter in parameters {
            let pattern = text_patterns
                .iter()
                .find(|(field, _)| parameter["name"] == *field);
            if let Some((_, pattern)) = pattern {
                parameter["schema"]["pattern"] = json!(pattern);
            }
        }
    }
    let link =
        |operation: &str, id: &str| json!({"operationId": operation, "parameters": {"id": id}});
    document["paths"]["/orders"]["post"]["responses"]["201"]["links"] = json!({
        "GetOrder": link("getOrder", "$response.body#/order/_id"),
        "UpdateOrder": link("updateOrder", "$response.body#/order/_id"),
        "DeleteOrder": link("deleteOrder", "$response.body#/order/_id"),
    });
    document["paths"]["/images"]["post"]["responses"]["202"]["links"] = json!({
        "GetImage": link("getImage", "$response.body#/job_id"),
        "GetOriginal": link("getOriginal", "$response.body#/job_id"),
        "GetThumbnail": link("getThumbnail", "$response.body#/job_id"),
        "DeleteImage": link("deleteImage", "$response.body#/job_id"),
    });
}

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn show() -> Json<Value> {
    Json(document())
}
