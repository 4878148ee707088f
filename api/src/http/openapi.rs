//! The OpenAPI document, assembled from the handlers' annotations and completed with what the
//! annotations cannot say (patterns shared with the domain's rules, closed bodies, links between
//! operations), and the handler that serves it.

use std::sync::LazyLock;

use axum::Json;
use serde_json::{Value, json};
use utoipa::OpenApi;

use super::auth::Area;
use super::orders::body::{MULTI_LINE_PATTERN, ONE_LINE_PATTERN};
use super::{error, images, metrics, operations, orders};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orders API",
        description = "Orders REST API of the shop backend. Every error is JSON with a `message`. \
            Requests to `/orders`, `/images` and `/metrics` need an API key \
            (`Authorization: Bearer shop_…`) with the operation's scope; `admin` holds them all."
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
    secure(document);
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

/// The key scheme, and on each guarded operation the scope it needs (from the rule the
/// middleware applies) and the 401/403 answers.
fn secure(document: &mut Value) {
    document["components"]["securitySchemes"] = json!({
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "shop_<16 hex digits>_<43 base64url characters>",
            "description": "An API key from `api keys create`. Scopes: orders:read, orders:write, \
                images:read, images:write, admin (all of them)."
        }
    });
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    let Some(paths) = document["paths"].as_object_mut() else {
        return;
    };
    for (path, operations) in paths {
        let Some(area) = Area::of_path(path) else {
            continue;
        };
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations {
            // Only operations: a path item's other keys (`parameters`, `summary`) are not.
            let method = match method.as_str() {
                "get" => axum::http::Method::GET,
                "head" => axum::http::Method::HEAD,
                "post" => axum::http::Method::POST,
                "put" => axum::http::Method::PUT,
                "patch" => axum::http::Method::PATCH,
                "delete" => axum::http::Method::DELETE,
                _ => continue,
            };
            operation["security"] = json!([{"apiKey": [area.needed(&method).as_str()]}]);
            operation["responses"]["401"] = error(
                "No API key, or one unknown, revoked or expired (`WWW-Authenticate: Bearer`)",
            );
            operation["responses"]["403"] = error("The API key lacks the operation's scope");
        }
    }
}

/// The OpenAPI 3 document of this API, generated from the code.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", operation_id = "openapi",
    responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn show() -> Json<Value> {
    Json(document())
}
