//! Orders in MongoDB: one document per order in the `orders` collection (configurable), `_id` a
//! real ObjectId.
//!
//! Documents written by the reference Flask service are served too: they lack timestamps (the
//! ObjectId's creation second stands in), may hold `quantity` as int32, int64 or double, and may
//! carry extra fields (ignored). Values that break today's rules are shown as stored.

use async_trait::async_trait;
use bson::{Bson, Document, doc, oid::ObjectId};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::options::ReturnDocument;

use super::{MongoStore, map_error, stamp, time};
use crate::idempotency::{Claim, KeyRecord, Scope};
use crate::orders::{
    CustomerAddress, CustomerName, ListRequest, Order, OrderChanges, OrderId, Page, Product,
    Quantity,
};
use crate::store::{OrderStore, StoreError};

fn to_document(order: &Order) -> Document {
    doc! {
        "_id": order.id.object_id(),
        "product": order.product.as_ref(),
        "quantity": order.quantity.get(),
        "customer_name": order.customer_name.as_ref(),
        "customer_address": order.customer_address.as_ref(),
        "created_at": stamp(order.created_at),
        "updated_at": stamp(order.updated_at),
    }
}

/// Reads a stored document leniently: see the module's documentation.
fn from_document(document: &Document) -> Result<Order, StoreError> {
    let id = document
        .get_object_id("_id")
        .map_err(|_| StoreError::Internal(anyhow::anyhow!("an order whose _id is no ObjectId")))?;
    let created_at = time(document.get("created_at")).unwrap_or_else(|| id_time(id));
    Ok(Order {
        id: OrderId::from(id),
        product: text(document, "product", Product::parse, Product::from_stored),
        quantity: quantity(document.get("quantity")),
        customer_name: text(
            document,
            "customer_name",
            CustomerName::parse,
            CustomerName::from_stored,
        ),
        customer_address: text(
            document,
            "customer_address",
            CustomerAddress::parse,
            CustomerAddress::from_stored,
        ),
        created_at,
        updated_at: time(document.get("updated_at")).unwrap_or(created_at),
    })
}

fn text<T>(
    document: &Document,
    field: &str,
    parse: fn(String) -> Result<T, String>,
    stored: fn(String) -> T,
) -> T {
    let value = match document.get(field) {
        Some(Bson::String(s)) => s.clone(),
        Some(Bson::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    parse(value.clone()).unwrap_or_else(|_| stored(value))
}

/// Integers as they are; doubles rounded to the nearest integer; anything else 0.
fn quantity(value: Option<&Bson>) -> Quantity {
    let number = match value {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) if n.is_finite() => n.round() as i64,
        Some(Bson::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    Quantity::from_stored(number)
}

fn id_time(id: ObjectId) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(id.timestamp().timestamp_millis()).unwrap_or_default()
}

#[async_trait]
impl OrderStore for MongoStore {
    async fn insert(&self, order: &Order) -> Result<(), StoreError> {
        self.orders
            .insert_one(to_document(order))
            .await
            .map(drop)
            .map_err(map_error)
    }

    async fn insert_keyed(&self, order: &Order, key: &KeyRecord) -> Result<Claim, StoreError> {
        self.insert_claiming(Scope::Orders, to_document(order), key, order.created_at)
            .await
    }

    async fn insert_many(&self, orders: &[Order]) -> Result<(), StoreError> {
        if orders.is_empty() {
            return Ok(());
        }
        self.orders
            .insert_many(orders.iter().map(to_document))
            .await
            .map(drop)
            .map_err(map_error)
    }

    async fn get(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        let found = self
            .orders
            .find_one(doc! { "_id": id.object_id() })
            .await
            .map_err(map_error)?;
        found.as_ref().map(from_document).transpose()
    }

    async fn update(
        &self,
        id: OrderId,
        changes: &OrderChanges,
        now: DateTime<Utc>,
    ) -> Result<Option<Order>, StoreError> {
        let mut set = doc! { "updated_at": stamp(now) };
        if let Some(product) = &changes.product {
            set.insert("product", product.as_ref());
        }
        if let Some(quantity) = changes.quantity {
            set.insert("quantity", quantity.get());
        }
        if let Some(name) = &changes.customer_name {
            set.insert("customer_name", name.as_ref());
        }
        if let Some(address) = &changes.customer_address {
            set.insert("customer_address", address.as_ref());
        }
        let updated = self
            .orders
            .find_one_and_update(doc! { "_id": id.object_id() }, doc! { "$set": set })
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_error)?;
        updated.as_ref().map(from_document).transpose()
    }

    async fn delete(&self, id: OrderId) -> Result<bool, StoreError> {
        let outcome = self
            .orders
            .delete_one(doc! { "_id": id.object_id() })
            .await
            .map_err(map_error)?;
        Ok(outcome.deleted_count > 0)
    }

    async fn list(&self, request: &ListRequest) -> Result<Page, StoreError> {
        let mut filter = Document::new();
        if let Some(name) = &request.customer_name {
            filter.insert("customer_name", name.as_ref());
        }
        if let Some(product) = &request.product {
            filter.insert("product", product.as_ref());
        }
        if let Some(after) = request.after {
            filter.insert("_id", doc! { "$gt": after.id().object_id() });
        }
        let documents: Vec<Document> = self
            .orders
            .find(filter)
            .sort(doc! { "_id": 1 })
            .limit(i64::from(request.size.get()) + 1)
            .await
            .map_err(map_error)?
            .try_collect()
            .await
            .map_err(map_error)?;
        let orders = documents
            .iter()
            .map(from_document)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(orders, request.size))
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.orders
            .delete_many(doc! {})
            .await
            .map(drop)
            .map_err(map_error)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.ready().await
    }
}
