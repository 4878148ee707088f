//! The order domain: what an order is and which values are valid. Nothing here knows HTTP or a
//! database; values that exist have passed their rules ("parse, don't validate").

mod id;
mod listing;
mod quantity;
pub(crate) mod text;

use chrono::{DateTime, Utc};

pub use id::OrderId;
pub use listing::{Cursor, ListRequest, Page, PageSize};
pub use quantity::Quantity;
pub use text::{CustomerAddress, CustomerName, Product};

/// A stored order.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: OrderId,
    pub product: Product,
    pub quantity: Quantity,
    pub customer_name: CustomerName,
    pub customer_address: CustomerAddress,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a client supplies to place an order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub product: Product,
    pub quantity: Quantity,
    pub customer_name: CustomerName,
    pub customer_address: CustomerAddress,
}

impl Order {
    /// A new order with a fresh id. Timestamps are kept to the millisecond, the precision every
    /// backend stores, so that what is returned on create equals what is read back later.
    pub fn place(new: NewOrder, now: DateTime<Utc>) -> Self {
        let now = truncate_to_millis(now);
        Self {
            id: OrderId::generate(),
            product: new.product,
            quantity: new.quantity,
            customer_name: new.customer_name,
            customer_address: new.customer_address,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A partial update: the fields present replace the stored ones, the others are kept.
#[derive(Debug, Clone, Default)]
pub struct OrderChanges {
    pub product: Option<Product>,
    pub quantity: Option<Quantity>,
    pub customer_name: Option<CustomerName>,
    pub customer_address: Option<CustomerAddress>,
}

impl OrderChanges {
    pub fn is_empty(&self) -> bool {
        self.product.is_none()
            && self.quantity.is_none()
            && self.customer_name.is_none()
            && self.customer_address.is_none()
    }
}

/// A time as the service writes it, in answers and in the SQLite file: RFC 3339, UTC, to the
/// millisecond.
pub fn to_rfc3339_millis(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn truncate_to_millis(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time)
}
