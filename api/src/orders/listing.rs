//! Bounded, cursor-paged listing: every page costs the same however large the collection grows.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{CustomerName, Order, OrderId, Product};

/// How many orders one page holds: 1 to 1000, 100 when not asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    pub const DEFAULT: u32 = 100;
    pub const MAX: u32 = 1000;

    pub fn parse(value: i64) -> Result<Self, String> {
        if (1..=i64::from(Self::MAX)).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(format!("must be an integer from 1 to {}", Self::MAX))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self(Self::DEFAULT)
    }
}

/// The opaque position after which the next page starts. Clients pass it back untouched;
/// its encoding (the last id's bytes in URL-safe base64) may change without notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(OrderId);

impl Cursor {
    pub fn after(id: OrderId) -> Self {
        Self(id)
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        let invalid = || "is not a cursor returned by this API".to_string();
        let bytes = URL_SAFE_NO_PAD.decode(value).map_err(|_| invalid())?;
        let bytes: [u8; 12] = bytes.try_into().map_err(|_| invalid())?;
        Ok(Self(OrderId::from_bytes(bytes)))
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.bytes())
    }

    pub fn id(&self) -> OrderId {
        self.0
    }
}

/// Which orders to list: a page of at most `size`, ordered by id, after `after`, matching the
/// filters exactly.
#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub size: PageSize,
    pub after: Option<Cursor>,
    pub customer_name: Option<CustomerName>,
    pub product: Option<Product>,
}

/// One page of orders and, when more may follow, where the next page starts.
#[derive(Debug, Clone)]
pub struct Page {
    pub orders: Vec<Order>,
    pub next: Option<Cursor>,
}

impl Page {
    /// Builds a page from up to `size + 1` orders in id order: stores fetch one more than a page
    /// so that the last page says it is the last without an extra query.
    pub fn from_overfetch(mut orders: Vec<Order>, size: PageSize) -> Self {
        let size = size.get() as usize;
        let next = if orders.len() > size {
            orders.truncate(size);
            orders.last().map(|o| Cursor::after(o.id))
        } else {
            None
        };
        Self { orders, next }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cursor, PageSize};
    use crate::orders::OrderId;

    #[test]
    fn page_size_bounds() {
        assert!(PageSize::parse(1).is_ok());
        assert!(PageSize::parse(1000).is_ok());
        assert!(PageSize::parse(0).is_err());
        assert!(PageSize::parse(1001).is_err());
        assert!(PageSize::parse(-1).is_err());
        assert_eq!(PageSize::default().get(), 100);
    }

    #[test]
    fn a_cursor_round_trips() {
        let cursor = Cursor::after(OrderId::generate());
        assert_eq!(Cursor::parse(&cursor.encode()).unwrap(), cursor);
    }

    #[test]
    fn a_forged_cursor_is_rejected() {
        for bad in [
            "",
            "!!!",
            "AAAA",
            "not a cursor at all",
            "65a1b2c3d4e5f60718293a4b",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
