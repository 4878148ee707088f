//! `/orders`: list, get, create, update, delete.

pub mod body;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use self::body::OrderView;
use super::error::{ApiError, ErrorBody, IdErrors, JsonBodyErrors, StoreErrors};
use super::idempotency::{self, KeyHeader};
use super::json::JsonObject;
use super::path_id::{IdPath, OrderPath};
use super::{AppState, Message};
use crate::idempotency::{Claim, Fingerprint, StoredResponse};
use crate::orders::{Cursor, CustomerName, ListRequest, Order, PageSize, Product};

const NOT_FOUND: &str = "Order not found";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(show).put(update).delete(remove))
}

/// Query parameters of `GET /orders`. Unknown parameters are refused, so a typo is not ignored.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 1000; default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// The `next` cursor of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{16}$")]
    after: Option<String>,
    /// Only orders of exactly this customer.
    #[param(min_length = 1, max_length = 200)]
    customer_name: Option<String>,
    /// Only orders of exactly this product.
    #[param(min_length = 1, max_length = 200)]
    product: Option<String>,
}

impl ListParams {
    fn parse(self) -> Result<ListRequest, ApiError> {
        let bad = |name: &str, why: String| ApiError::BadRequest(format!("{name}: {why}"));
        let size = match self.limit {
            None => PageSize::default(),
            Some(text) => text
                .parse::<i64>()
                .map_err(|_| format!("must be an integer from 1 to {}", PageSize::MAX))
                .and_then(PageSize::parse)
                .map_err(|why| bad("limit", why))?,
        };
        Ok(ListRequest {
            size,
            after: self
                .after
                .map(|c| Cursor::parse(&c).map_err(|why| bad("after", why)))
                .transpose()?,
            customer_name: self
                .customer_name
                .map(|n| CustomerName::parse(n).map_err(|why| bad("customer_name", why)))
                .transpose()?,
            product: self
                .product
                .map(|p| Product::parse(p).map_err(|why| bad("product", why)))
                .transpose()?,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    orders: Vec<OrderView>,
    /// Pass as `after` to get the next page; `null` on the last page.
    next: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OrderEnvelope {
    order: OrderView,
}

#[derive(Serialize, ToSchema)]
pub struct OrderMessage {
    message: String,
    order: OrderView,
}

/// List orders, one bounded page at a time, oldest first.
#[utoipa::path(get, path = "/orders", tag = "orders", operation_id = "listOrders",
    params(ListParams),
    responses(
        (status = 200, description = "A page of orders", body = OrderList),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<OrderList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let page = state.orders.list(&params.parse()?).await?;
    Ok(Json(OrderList {
        orders: page.orders.iter().map(OrderView::from).collect(),
        next: page.next.map(|c| c.encode()),
    }))
}

/// Get one order.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", operation_id = "getOrder",
    params(OrderPath),
    responses((status = 200, description = "The order", body = OrderEnvelope), IdErrors))]
pub async fn show(
    State(state): State<AppState>,
    IdPath(id): OrderPath,
) -> Result<Json<OrderEnvelope>, ApiError> {
    let order = state.orders.get(id).await?;
    let order = order.ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(Json(OrderEnvelope {
        order: OrderView::from(&order),
    }))
}

/// Place an order. With an `Idempotency-Key`, a repeat gets the first answer again.
#[utoipa::path(post, path = "/orders", tag = "orders", operation_id = "createOrder",
    request_body = body::OrderInput,
    params(KeyHeader),
    responses(
        (status = 201, description = "Created; `Location` names the new order. A replayed answer \
            carries `Idempotent-Replayed: true`", body = OrderMessage),
        JsonBodyErrors,
        StoreErrors,
    ))]
pub async fn create(
    State(state): State<AppState>,
    KeyHeader(key): KeyHeader,
    JsonObject(object): JsonObject,
) -> Result<Response, ApiError> {
    let new = body::new_order(object)?;
    let fingerprint = Fingerprint::of([
        new.product.as_ref().as_bytes(),
        new.quantity.get().to_string().as_bytes(),
        new.customer_name.as_ref().as_bytes(),
        new.customer_address.as_ref().as_bytes(),
    ]);
    let order = Order::place(new, Utc::now());
    let body = OrderMessage {
        message: "Order created successfully".into(),
        order: OrderView::from(&order),
    };
    let response = StoredResponse {
        status: StatusCode::CREATED.as_u16(),
        location: format!("/orders/{}", order.id),
        body: serde_json::to_string(&body).map_err(|e| ApiError::Internal(e.into()))?,
    };
    let Some(key) = key else {
        state.orders.insert(&order).await?;
        return Ok(idempotency::respond(&response, false));
    };
    let record = idempotency::record(
        key,
        fingerprint,
        response,
        order.created_at,
        state.key_retention,
    );
    match state.orders.insert_keyed(&order, &record).await? {
        Claim::Created => Ok(idempotency::respond(&record.response, false)),
        Claim::Taken(earlier) => idempotency::replay(&earlier, &record.fingerprint),
    }
}

/// Change some fields of an order; the fields not sent are kept.
#[utoipa::path(put, path = "/orders/{id}", tag = "orders", operation_id = "updateOrder",
    request_body = body::OrderChangesInput, params(OrderPath),
    responses(
        (status = 200, description = "The whole updated order", body = OrderMessage),
        JsonBodyErrors,
        IdErrors,
    ))]
pub async fn update(
    State(state): State<AppState>,
    IdPath(id): OrderPath,
    JsonObject(object): JsonObject,
) -> Result<Json<OrderMessage>, ApiError> {
    let changes = body::changes(object)?;
    let order = state.orders.update(id, &changes, Utc::now()).await?;
    let order = order.ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(Json(OrderMessage {
        message: "Order updated successfully".into(),
        order: OrderView::from(&order),
    }))
}

/// Delete an order.
#[utoipa::path(delete, path = "/orders/{id}", tag = "orders", operation_id = "deleteOrder",
    params(OrderPath),
    responses((status = 200, description = "Deleted", body = Message), IdErrors))]
pub async fn remove(
    State(state): State<AppState>,
    IdPath(id): OrderPath,
) -> Result<Json<Message>, ApiError> {
    if state.orders.delete(id).await? {
        Ok(Json(Message {
            message: "Order deleted successfully".into(),
        }))
    } else {
        Err(ApiError::NotFound(NOT_FOUND))
    }
}
