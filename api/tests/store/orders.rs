//! What every `OrderStore` backend must do. Each backend module calls `order_store_suite!` with an
//! async function returning fresh, empty stores (or `None` when its server is not available),
//! so the same cases run against every backend under the backend's own module name.

use std::collections::HashSet;

use api::orders::{
    Cursor, CustomerAddress, CustomerName, ListRequest, NewOrder, Order, OrderChanges, OrderId,
    PageSize, Product, Quantity,
};
use api::store::{OrderStore, StoreError};
use chrono::{Duration, Utc};

pub fn order(product: &str, customer: &str, quantity: i64) -> Order {
    Order::place(
        NewOrder {
            product: Product::parse(product).unwrap(),
            quantity: Quantity::parse(quantity).unwrap(),
            customer_name: CustomerName::parse(customer).unwrap(),
            customer_address: CustomerAddress::parse("1 Main St\nSpringfield").unwrap(),
        },
        Utc::now(),
    )
}

fn page(size: i64, after: Option<Cursor>) -> ListRequest {
    ListRequest {
        size: PageSize::parse(size).unwrap(),
        after,
        ..ListRequest::default()
    }
}

/// Reads every page of `request` and returns the ids in the order they came.
async fn all_pages(store: &dyn OrderStore, mut request: ListRequest) -> Vec<OrderId> {
    let mut ids = Vec::new();
    for _ in 0..1000 {
        let page = store.list(&request).await.unwrap();
        assert!(page.orders.len() <= request.size.get() as usize);
        ids.extend(page.orders.iter().map(|o| o.id));
        match page.next {
            Some(next) => request.after = Some(next),
            None => return ids,
        }
    }
    panic!("paging did not end");
}

pub async fn an_inserted_order_is_read_back_unchanged(store: &dyn OrderStore) {
    let placed = order("Laptop ünïcødé 🚀", "Zoë O'Brien", 3);
    store.insert(&placed).await.unwrap();
    assert_eq!(store.get(placed.id).await.unwrap(), Some(placed));
}

pub async fn an_unknown_id_is_absent(store: &dyn OrderStore) {
    store.insert(&order("Laptop", "A", 1)).await.unwrap();
    assert_eq!(store.get(OrderId::generate()).await.unwrap(), None);
}

pub async fn an_update_changes_only_the_given_fields(store: &dyn OrderStore) {
    let placed = order("Laptop", "John Doe", 1);
    store.insert(&placed).await.unwrap();
    let later = placed.created_at + Duration::seconds(5);
    let changes = OrderChanges {
        quantity: Some(Quantity::parse(7).unwrap()),
        customer_address: Some(CustomerAddress::parse("9 Elm St").unwrap()),
        ..OrderChanges::default()
    };
    let updated = store
        .update(placed.id, &changes, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.quantity.get(), 7);
    assert_eq!(updated.customer_address.as_ref(), "9 Elm St");
    assert_eq!(updated.product, placed.product);
    assert_eq!(updated.customer_name, placed.customer_name);
    assert_eq!(updated.created_at, placed.created_at);
    assert_eq!(updated.updated_at, later);
    assert_eq!(store.get(placed.id).await.unwrap(), Some(updated));
}

pub async fn an_update_of_an_unknown_id_is_absent(store: &dyn OrderStore) {
    let changes = OrderChanges {
        quantity: Some(Quantity::parse(2).unwrap()),
        ..OrderChanges::default()
    };
    let outcome = store
        .update(OrderId::generate(), &changes, Utc::now())
        .await;
    assert!(outcome.unwrap().is_none());
}

pub async fn a_deleted_order_is_gone(store: &dyn OrderStore) {
    let placed = order("Laptop", "A", 1);
    let kept = order("Mouse", "B", 1);
    store.insert(&placed).await.unwrap();
    store.insert(&kept).await.unwrap();
    assert!(store.delete(placed.id).await.unwrap());
    assert_eq!(store.get(placed.id).await.unwrap(), None);
    assert!(!store.delete(placed.id).await.unwrap());
    assert_eq!(store.get(kept.id).await.unwrap(), Some(kept));
}

pub async fn inserting_a_duplicate_id_is_a_conflict(store: &dyn OrderStore) {
    let placed = order("Laptop", "A", 1);
    store.insert(&placed).await.unwrap();
    let outcome = store.insert(&placed).await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict(_))),
        "{outcome:?}"
    );
}

pub async fn an_empty_store_lists_an_empty_last_page(store: &dyn OrderStore) {
    let page = store.list(&ListRequest::default()).await.unwrap();
    assert!(page.orders.is_empty());
    assert!(page.next.is_none());
}

pub async fn paging_visits_every_order_once_in_id_order(store: &dyn OrderStore) {
    let orders: Vec<Order> = (0..25).map(|i| order("Pen", &format!("C{i}"), 1)).collect();
    store.insert_many(&orders).await.unwrap();
    let first = store.list(&page(10, None)).await.unwrap();
    assert_eq!(first.orders.len(), 10);
    assert!(first.next.is_some());
    let ids = all_pages(store, page(10, None)).await;
    let expected: Vec<OrderId> = orders.iter().map(|o| o.id).collect();
    assert_eq!(ids, expected, "every order once, oldest first");
}

pub async fn a_full_last_page_says_it_is_the_last(store: &dyn OrderStore) {
    let orders: Vec<Order> = (0..20).map(|i| order("Pen", &format!("C{i}"), 1)).collect();
    store.insert_many(&orders).await.unwrap();
    let first = store.list(&page(10, None)).await.unwrap();
    let second = store.list(&page(10, first.next)).await.unwrap();
    assert_eq!(second.orders.len(), 10);
    assert!(second.next.is_none());
}

pub async fn filters_match_exactly_and_page(store: &dyn OrderStore) {
    let mut orders = Vec::new();
    for i in 0..30 {
        let customer = if i % 3 == 0 { "Ada" } else { "Ada Lovelace" };
        let product = if i % 2 == 0 { "Laptop" } else { "laptop" };
        orders.push(order(product, customer, i + 1));
    }
    store.insert_many(&orders).await.unwrap();
    let by_customer = all_pages(
        store,
        ListRequest {
            customer_name: Some(CustomerName::parse("Ada").unwrap()),
            ..page(3, None)
        },
    )
    .await;
    let expected: Vec<OrderId> = orders
        .iter()
        .filter(|o| o.customer_name.as_ref() == "Ada")
        .map(|o| o.id)
        .collect();
    assert_eq!(by_customer, expected);
    let both = all_pages(
        store,
        ListRequest {
            customer_name: Some(CustomerName::parse("Ada").unwrap()),
            product: Some(Product::parse("Laptop").unwrap()),
            ..page(2, None)
        },
    )
    .await;
    let expected: Vec<OrderId> = orders
        .iter()
        .filter(|o| o.customer_name.as_ref() == "Ada" && o.product.as_ref() == "Laptop")
        .map(|o| o.id)
        .collect();
    assert_eq!(both, expected);
    assert_eq!(expected.len(), 5);
}

pub async fn orders_written_while_paging_do_not_cause_repeats(store: &dyn OrderStore) {
    let orders: Vec<Order> = (0..15).map(|i| order("Pen", &format!("C{i}"), 1)).collect();
    store.insert_many(&orders).await.unwrap();
    let first = store.list(&page(5, None)).await.unwrap();
    store.delete(orders[7].id).await.unwrap();
    store.insert(&order("Late", "Z", 1)).await.unwrap();
    let rest = all_pages(store, page(5, first.next)).await;
    let mut seen: HashSet<OrderId> = first.orders.iter().map(|o| o.id).collect();
    for id in &rest {
        assert!(seen.insert(*id), "{id} listed twice");
    }
    assert_eq!(seen.len(), 15, "14 left of the first 15, plus the late one");
}

pub async fn clear_removes_every_order(store: &dyn OrderStore) {
    let orders: Vec<Order> = (0..5).map(|i| order("Pen", &format!("C{i}"), 1)).collect();
    store.insert_many(&orders).await.unwrap();
    store.clear().await.unwrap();
    assert!(
        store
            .list(&ListRequest::default())
            .await
            .unwrap()
            .orders
            .is_empty()
    );
    assert_eq!(store.get(orders[0].id).await.unwrap(), None);
}

pub async fn a_reachable_store_answers_ping(store: &dyn OrderStore) {
    store.ping().await.unwrap();
}

/// Declares one test per case above, each on fresh stores from `$open`.
macro_rules! order_store_suite {
    ($open:path) => {
        mod orders {
            use super::*;
            order_store_suite!(@cases $open;
            an_inserted_order_is_read_back_unchanged,
            an_unknown_id_is_absent,
            an_update_changes_only_the_given_fields,
            an_update_of_an_unknown_id_is_absent,
            a_deleted_order_is_gone,
            inserting_a_duplicate_id_is_a_conflict,
            an_empty_store_lists_an_empty_last_page,
            paging_visits_every_order_once_in_id_order,
            a_full_last_page_says_it_is_the_last,
            filters_match_exactly_and_page,
            orders_written_while_paging_do_not_cause_repeats,
            clear_removes_every_order,
            a_reachable_store_answers_ping,
            );
        }
    };
    (@cases $open:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                let Some(backend) = $open().await else { return };
                crate::orders::$case(&*backend.stores.orders).await;
                backend.finish().await;
            }
        )+
    };
}
