//! How orders look on the wire: the JSON a client sends, checked field by field against the
//! domain's rules, and the JSON the API answers with.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::http::error::{ApiError, FieldErrors};
use crate::orders::to_rfc3339_millis as shown;
use crate::orders::{
    CustomerAddress, CustomerName, NewOrder, Order, OrderChanges, Product, Quantity,
};

/// An order as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    /// 24 hex characters (a MongoDB ObjectId), assigned by the server.
    #[serde(rename = "_id")]
    #[schema(example = "6740a1b2c3d4e5f607182930")]
    pub id: String,
    #[schema(example = "Laptop")]
    pub product: String,
    #[schema(example = 1, minimum = 1, maximum = 1000000)]
    pub quantity: i64,
    #[schema(example = "John Doe")]
    pub customer_name: String,
    #[schema(example = "123 Main St")]
    pub customer_address: String,
    /// RFC 3339, UTC, milliseconds.
    #[schema(example = "2026-11-22T11:02:06.123Z")]
    pub created_at: String,
    /// RFC 3339, UTC, milliseconds.
    #[schema(example = "2026-11-22T11:02:06.123Z")]
    pub updated_at: String,
}

impl From<&Order> for OrderView {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id.to_string(),
            product: order.product.as_ref().to_owned(),
            quantity: order.quantity.get(),
            customer_name: order.customer_name.as_ref().to_owned(),
            customer_address: order.customer_address.as_ref().to_owned(),
            created_at: shown(&order.created_at),
            updated_at: shown(&order.updated_at),
        }
    }
}

/// What a product or a customer name may be, as an ECMA 262 pattern for the OpenAPI document:
/// no control character (`char::is_control`) and one character at least that is not white space
/// (`char::is_whitespace`), as `orders::text` checks.
pub const ONE_LINE_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$";

/// The same for an address, where tabs, CR and LF are allowed.
pub const MULTI_LINE_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// The fields of a new order: all four, and no other (`_id` included).
#[derive(ToSchema)]
#[allow(dead_code)] // only documents the request schema: bodies are read field by field
pub struct OrderInput {
    /// 1 to 200 characters, not blank, no control characters.
    #[schema(example = "Laptop", min_length = 1, max_length = 200)]
    product: String,
    /// An integer from 1 to 1,000,000 (`5.0` is the integer 5; a string, a fraction or a
    /// boolean is refused).
    #[schema(example = 1, minimum = 1, maximum = 1000000)]
    quantity: u32,
    /// 1 to 200 characters, not blank, no control characters.
    #[schema(example = "John Doe", min_length = 1, max_length = 200)]
    customer_name: String,
    /// 1 to 500 characters, not blank; may span lines (tabs, CR and LF are its only control
    /// characters).
    #[schema(example = "123 Main St", min_length = 1, max_length = 500)]
    customer_address: String,
}

/// Changes to an order: at least one of the four fields (the others are kept), and no other.
/// The rules of each field are those of [`OrderInput`].
#[derive(ToSchema)]
#[allow(dead_code)] // only documents the request schema: bodies are read field by field
pub struct OrderChangesInput {
    #[schema(example = "Laptop", min_length = 1, max_length = 200)]
    product: Option<String>,
    #[schema(example = 2, minimum = 1, maximum = 1000000)]
    quantity: Option<u32>,
    #[schema(example = "John Doe", min_length = 1, max_length = 200)]
    customer_name: Option<String>,
    #[schema(example = "123 Main St", min_length = 1, max_length = 500)]
    customer_address: Option<String>,
}

/// The fields found in a body, each parsed by its domain rule, with the reasons for those that
/// failed.
#[derive(Default)]
struct Fields {
    values: OrderChanges,
    errors: FieldErrors,
}

impl Fields {
    fn read(object: Map<String, Value>) -> Self {
        let mut fields = Self::default();
        for (name, value) in object {
            let outcome = match name.as_str() {
                "product" => text(value, Product::parse).map(|v| fields.values.product = Some(v)),
                "customer_name" => {
                    text(value, CustomerName::parse).map(|v| fields.values.customer_name = Some(v))
                }
                "customer_address" => text(value, CustomerAddress::parse)
                    .map(|v| fields.values.customer_address = Some(v)),
                "quantity" => quantity(value).map(|v| fields.values.quantity = Some(v)),
                "_id" => Err("is assigned by the server and cannot be set".into()),
                _ => Err("is not a field of an order".into()),
            };
            if let Err(reason) = outcome {
                fields.errors.insert(name, reason);
            }
        }
        fields
    }
}

fn text<T>(value: Value, parse: fn(String) -> Result<T, String>) -> Result<T, String> {
    match value {
        Value::String(s) => parse(s),
        Value::Null => Err("must not be null".into()),
        _ => Err("must be a string".into()),
    }
}

/// A JSON number with no fractional part: `5` or `5.0` (the same number, as JSON Schema reads
/// it, so that the OpenAPI `integer` says exactly what is taken); `5.5`, `"5"` and `true` are not.
fn quantity(value: Value) -> Result<Quantity, String> {
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(n), _) => Quantity::parse(n),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() <= 1e15 => Quantity::parse(f as i64),
            _ => Err(Quantity::rule()),
        },
        Value::Null => Err("must not be null".into()),
        _ => Err(Quantity::rule()),
    }
}

/// The body of `POST /orders`: all four fields, valid, and nothing else.
pub fn new_order(object: Map<String, Value>) -> Result<NewOrder, ApiError> {
    let Fields { values, mut errors } = Fields::read(object);
    let required = [
        ("product", values.product.is_none()),
        ("quantity", values.quantity.is_none()),
        ("customer_name", values.customer_name.is_none()),
        ("customer_address", values.customer_address.is_none()),
    ];
    for (name, missing) in required {
        if missing {
            errors
                .entry(name.to_owned())
                .or_insert_with(|| "is required".into());
        }
    }
    match values {
        OrderChanges {
            product: Some(product),
            quantity: Some(quantity),
            customer_name: Some(customer_name),
            customer_address: Some(customer_address),
        } if errors.is_empty() => Ok(NewOrder {
            product,
            quantity,
            customer_name,
            customer_address,
        }),
        _ => Err(ApiError::validation(errors)),
    }
}

/// The body of `PUT /orders/{id}`: a non-empty subset of the fields, valid, and nothing else.
pub fn changes(object: Map<String, Value>) -> Result<OrderChanges, ApiError> {
    let Fields { values, errors } = Fields::read(object);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if values.is_empty() {
        return Err(ApiError::Validation {
            message: "the body must contain at least one of product, quantity, customer_name, \
                      customer_address"
                .into(),
            errors: FieldErrors::new(),
        });
    }
    Ok(values)
}
