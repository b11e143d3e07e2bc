//! Ordering per-customer rows by customer id (byte order, the order every output and both
//! backends share) without a million string comparisons at random heap addresses: rows are
//! sorted on the ids' first 16 bytes read as a big-endian number, in one contiguous array, and
//! only rows whose prefixes are equal compare their whole ids.

use rayon::prelude::*;

/// The first 16 bytes of `id` as a big-endian number, zero-padded: comparing two prefixes agrees
/// with comparing the ids whenever the prefixes differ.
fn prefix(id: &str) -> u128 {
    let mut b = [0u8; 16];
    let n = id.len().min(16);
    b[..n].copy_from_slice(&id.as_bytes()[..n]);
    u128::from_be_bytes(b)
}

/// The positions `0..len` ordered by `id(i)` (byte order; equal ids keep no particular order).
pub fn order_by_id<'a, F>(len: usize, id: F) -> Vec<usize>
where
    F: Fn(usize) -> &'a str + Sync,
{
    let mut order: Vec<(u128, usize)> = (0..len).map(|i| (prefix(id(i)), i)).collect();
    order.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| id(a.1).cmp(id(b.1))));
    order.into_iter().map(|(_, i)| i).collect()
}

/// `items` sorted by customer id (byte order; items with equal ids in no particular order). The
/// items are moved in place (no second copy of them is held).
pub fn sort_by_id<T, F>(mut items: Vec<T>, id: F) -> Vec<T>
where
    T: Sync,
    F: Fn(&T) -> &str + Sync,
{
    if items.windows(2).all(|w| id(&w[0]) <= id(&w[1])) {
        return items;
    }
    let mut order = order_by_id(items.len(), |i| id(&items[i]));
    // `order[j]` names the item that belongs at `j`: follow each cycle once, marking the
    // positions done as `order[j] = j`.
    for start in 0..order.len() {
        let mut j = start;
        loop {
            let from = order[j];
            order[j] = j;
            if from == start || from == j {
                break;
            }
            items.swap(j, from);
            j = from;
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sorts_like_string_order(ids in proptest::collection::vec(
            prop_oneof![
                "[0-9]{0,12}",
                "[a-c]{0,10}",
                "\\PC{0,6}",
                Just(String::from("abcdefgh")),
                Just(String::from("abcdefgh\u{0}")),
                Just(String::from("abcdefg")),
                Just(String::from("customer-0000001")),
                Just(String::from("customer-00000012")),
                Just(String::from("customer-0000001\u{0}")),
            ],
            0..300,
        )) {
            let mut want = ids.clone();
            want.sort();
            let got = sort_by_id(ids.clone(), |s: &String| s.as_str());
            prop_assert_eq!(&got, &want);
            let order = order_by_id(ids.len(), |i| ids[i].as_str());
            let by_order: Vec<&str> = order.iter().map(|&i| ids[i].as_str()).collect();
            prop_assert_eq!(by_order, want.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
