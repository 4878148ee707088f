//! The sample data set: realistic orders generated from a fixed seed, so the same count always
//! gives the same orders, ids included. Order `i` of a set is the same in every larger set.

use api::orders::{CustomerAddress, CustomerName, Order, OrderId, Product, Quantity};
use chrono::{DateTime, Duration, Utc};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// Changing it changes the data set; load tests compare runs on the same one.
const SEED: u64 = 0x5eed_0de5;

const PRODUCTS: &[&str] = &[
    "Laptop",
    "Wireless Mouse",
    "Mechanical Keyboard",
    "27\" Monitor",
    "USB-C Hub",
    "Noise-Cancelling Headphones",
    "Webcam 1080p",
    "Desk Lamp",
    "Office Chair",
    "Standing Desk",
    "External SSD 1TB",
    "Phone Case",
    "Smartphone",
    "Tablet",
    "E-Reader",
    "Smartwatch",
    "Bluetooth Speaker",
    "Coffee Grinder",
    "Espresso Machine",
    "French Press",
    "Water Bottle",
    "Backpack",
    "Running Shoes",
    "Yoga Mat",
    "Dumbbell Set",
    "Cookbook",
    "Notebook A5",
    "Fountain Pen",
    "Printer Paper (500 sheets)",
    "HDMI Cable 2m",
    "Power Bank 20000mAh",
    "Wi-Fi Router",
    "Graphics Tablet",
    "Microphone",
    "Ring Light",
    "Board Game",
    "Puzzle 1000 pcs",
    "Plant Pot",
    "Scented Candle",
    "Throw Blanket",
];

const FIRST_NAMES: &[&str] = &[
    "John",
    "Jane",
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "Edsger",
    "Radia",
    "Tim",
    "Hedy",
    "Donald",
    "Katherine",
    "Niklaus",
    "Anita",
    "Guido",
    "Sophie",
    "Yukihiro",
    "Mary",
    "James",
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Mateo",
    "Zoë",
    "Chloé",
    "José",
    "Søren",
    "Aoife",
    "Nguyễn",
    "Priya",
    "Kwame",
    "Fatima",
    "Wei",
];

const LAST_NAMES: &[&str] = &[
    "Doe",
    "Smith",
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Dijkstra",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Knuth",
    "Johnson",
    "Wirth",
    "Borg",
    "van Rossum",
    "Wilson",
    "Matsumoto",
    "García",
    "O'Brien",
    "Müller",
    "Kowalski",
    "Okafor",
    "Haddad",
    "Chen",
    "Patel",
];

const STREETS: &[&str] = &[
    "Main St",
    "Elm St",
    "Oak Ave",
    "Maple Rd",
    "Cedar Ln",
    "Pine St",
    "Washington Blvd",
    "Lake View Dr",
    "Hillside Ave",
    "Park Pl",
    "Sunset Blvd",
    "River Rd",
    "Church St",
    "High St",
    "Station Rd",
    "Mill Ln",
    "Rue de la Paix",
    "Königstraße",
    "Calle Mayor",
];

const CITIES: &[&str] = &[
    "Springfield, IL 62701",
    "Portland, OR 97201",
    "Austin, TX 73301",
    "Boston, MA 02108",
    "Denver, CO 80202",
    "London EC1A 1BB",
    "Paris 75002",
    "Berlin 10117",
    "Madrid 28013",
    "Dublin D02",
    "Toronto, ON M5H",
    "Sydney NSW 2000",
    "Lagos 100001",
    "Bengaluru 560001",
];

/// The first order's creation time; order `i` is created `i * 10 ms` later.
fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_689_600, 0).expect("a valid instant") // 2025-01-01T00:00:00Z
}

/// Order `index` of the data set. Its id starts with its creation second, as every ObjectId does,
/// then "SEED" and the index, so seeded ids sort in index order and never collide with new ones.
pub fn order(index: u32) -> Order {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED ^ u64::from(index));
    let mut pick = |list: &[&'static str]| list[(rng.next_u64() % list.len() as u64) as usize];
    let product = pick(PRODUCTS);
    let name = format!("{} {}", pick(FIRST_NAMES), pick(LAST_NAMES));
    let street = pick(STREETS);
    let city = pick(CITIES);
    let number = 1 + rng.next_u64() % 9_999;
    let quantity = 1 + (rng.next_u64() % 100) * (rng.next_u64() % 3) / 2;
    let created_at = epoch() + Duration::milliseconds(i64::from(index) * 10);
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&(created_at.timestamp() as u32).to_be_bytes());
    id[4..8].copy_from_slice(b"SEED");
    id[8..].copy_from_slice(&index.to_be_bytes());
    Order {
        id: OrderId::from_bytes(id),
        product: Product::parse(product).expect("sample products are valid"),
        quantity: Quantity::parse(quantity as i64).expect("1 to 100 is a valid quantity"),
        customer_name: CustomerName::parse(name).expect("sample names are valid"),
        customer_address: CustomerAddress::parse(format!("{number} {street}\n{city}"))
            .expect("sample addresses are valid"),
        created_at,
        updated_at: created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::order;

    #[test]
    fn the_same_index_gives_the_same_order() {
        for index in [0, 1, 999_999] {
            assert_eq!(order(index), order(index));
        }
    }

    #[test]
    fn ids_follow_the_index_and_differ() {
        let ids: Vec<_> = (0..1000).map(|i| order(i).id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn orders_vary() {
        let products: std::collections::HashSet<_> = (0..200)
            .map(|i| order(i).product.as_ref().to_owned())
            .collect();
        assert!(products.len() > 20);
    }
}
