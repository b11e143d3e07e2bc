//! The item-to-item model. Customers are added one at a time ([`ModelBuilder::add_customer`]):
//! only the distinct products of each history are kept (a compressed list per customer), so the
//! builder's memory is one entry per (customer, product), whatever the number of order lines.
//! [`ModelBuilder::build`] inverts the lists, counts co-purchases product by product in parallel
//! (a dense counter per thread) and keeps each product's `neighbours` most similar products by
//! shrunk cosine similarity
//!
//! ```text
//! sim(i, j) = c(i, j) / (sqrt(n(i) · n(j)) + shrink)
//! ```
//!
//! where `c(i, j)` counts customers who bought both and `n(i)` the buyers of `i`: cosine on the
//! binary customer × product matrix, shrunk towards zero when the evidence is a handful of
//! customers (so a pair seen once between two rare products does not outrank a pattern seen by
//! hundreds). A customer's score for a product is the sum of its similarities to the products
//! they bought. Returned products count as seen (never recommended) but not as purchases.

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::Day;

/// One order line of a customer, as the model reads it. `returned` is the returns rule's verdict
/// (decided by the caller with the shop's one rule, never here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub product: i64,
    pub day: Day,
    pub quantity: i64,
    pub returned: bool,
}

/// Model settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Neighbours kept per product.
    pub neighbours: usize,
    /// Shrinkage of the cosine similarity (customers).
    pub shrink: f32,
    /// Train only on lines dated before this day (`None`: all lines).
    pub before: Option<Day>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            neighbours: 50,
            shrink: 10.0,
            before: None,
        }
    }
}

/// One recommended product.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pick {
    pub product: i64,
    pub score: f32,
    /// From the popularity fallback rather than the customer's history.
    pub popular: bool,
}

/// A customer's history entry: the product's dense index, with the top bit set when the customer
/// only returned it (seen, not bought).
const RETURNED: u32 = 1 << 31;

/// Collects customers' histories for a [`Model`].
#[derive(Debug, Default)]
pub struct ModelBuilder {
    opts: Options,
    index: FxHashMap<i64, u32>,
    products: Vec<i64>,
    customers: Vec<i64>,
    offsets: Vec<usize>,
    history: Vec<u32>,
    scratch: Vec<(u32, bool)>,
}

impl ModelBuilder {
    pub fn new(opts: Options) -> Self {
        Self {
            opts,
            offsets: vec![0],
            ..Default::default()
        }
    }

    /// The product's dense index, adding it when new.
    fn product_index(&mut self, product: i64) -> u32 {
        match self.index.get(&product) {
            Some(&i) => i,
            None => {
                let i = self.products.len() as u32;
                self.products.push(product);
                self.index.insert(product, i);
                i
            }
        }
    }

    /// Makes `product` known to the model (e.g. a catalogue product nobody bought yet).
    pub fn add_product(&mut self, product: i64) {
        self.product_index(product);
    }

    /// Adds one customer's order lines (any order; lines on or after `before` are ignored).
    /// A customer is added once; one without lines before the cutoff is not added.
    pub fn add_customer(&mut self, customer: i64, lines: &[Line]) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        for l in lines {
            if self.opts.before.is_some_and(|b| l.day >= b) {
                continue;
            }
            let i = self.product_index(l.product);
            scratch.push((i, l.returned || l.quantity < 0));
        }
        if !scratch.is_empty() {
            // Bought beats returned: a product kept in any order is a purchase.
            scratch.sort_unstable();
            scratch.dedup_by(|b, a| {
                if a.0 == b.0 {
                    a.1 &= b.1;
                    true
                } else {
                    false
                }
            });
            self.history.extend(
                scratch
                    .iter()
                    .map(|&(i, returned)| if returned { i | RETURNED } else { i }),
            );
            self.offsets.push(self.history.len());
            self.customers.push(customer);
        }
        self.scratch = scratch;
    }

    /// Builds the model: co-purchase counts product by product, the strongest neighbours kept.
    pub fn build(self) -> Model {
        let n = self.products.len();
        let opts = self.opts;
        // Buyers per product and the inverted lists (product → customers who bought it).
        let mut buyers = vec![0u32; n];
        for &h in &self.history {
            if h & RETURNED == 0 {
                buyers[h as usize] += 1;
            }
        }
        let mut inv_off = vec![0usize; n + 1];
        for i in 0..n {
            inv_off[i + 1] = inv_off[i] + buyers[i] as usize;
        }
        let mut fill = inv_off.clone();
        let mut inv = vec![0u32; inv_off[n]];
        for c in 0..self.customers.len() {
            for &h in &self.history[self.offsets[c]..self.offsets[c + 1]] {
                if h & RETURNED == 0 {
                    inv[fill[h as usize]] = c as u32;
                    fill[h as usize] += 1;
                }
            }
        }
        drop(fill);
        let history = &self.history;
        let offsets = &self.offsets;
        let products = &self.products;
        let k = opts.neighbours;
        let lists: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map_init(
                || (vec![0u32; n], Vec::<u32>::new()),
                |(count, touched), i| {
                    for &c in &inv[inv_off[i]..inv_off[i + 1]] {
                        let c = c as usize;
                        for &h in &history[offsets[c]..offsets[c + 1]] {
                            if h & RETURNED != 0 || h as usize == i {
                                continue;
                            }
                            let j = h as usize;
                            if count[j] == 0 {
                                touched.push(j as u32);
                            }
                            count[j] += 1;
                        }
                    }
                    let ni = buyers[i] as f32;
                    let mut sims: Vec<(u32, f32)> = touched
                        .iter()
                        .map(|&j| {
                            let c = count[j as usize] as f32;
                            let nj = buyers[j as usize] as f32;
                            (j, c / ((ni * nj).sqrt() + opts.shrink))
                        })
                        .collect();
                    for &j in touched.iter() {
                        count[j as usize] = 0;
                    }
                    touched.clear();
                    let better = |a: &(u32, f32), b: &(u32, f32)| {
                        b.1.total_cmp(&a.1)
                            .then(products[a.0 as usize].cmp(&products[b.0 as usize]))
                    };
                    if sims.len() > k {
                        sims.select_nth_unstable_by(k, better);
                        sims.truncate(k);
                    }
                    sims.sort_unstable_by(better);
                    sims
                },
            )
            .collect();
        drop(inv);
        let mut nb_off = Vec::with_capacity(n + 1);
        nb_off.push(0usize);
        let mut nb = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        for l in lists {
            nb.extend(l);
            nb_off.push(nb.len());
        }
        let mut popular: Vec<u32> = (0..n as u32).collect();
        popular.sort_unstable_by(|&a, &b| {
            buyers[b as usize]
                .cmp(&buyers[a as usize])
                .then(self.products[a as usize].cmp(&self.products[b as usize]))
        });
        let customer_index = self
            .customers
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        Model {
            products: self.products,
            index: self.index,
            buyers,
            popular,
            nb_off,
            nb,
            customers: self.customers,
            customer_index,
            offsets: self.offsets,
            history: self.history,
            unavailable: Vec::new(),
        }
    }
}

/// The trained model: each product's neighbours, the popularity order, and the customers'
/// histories (what they may not be offered).
#[derive(Debug)]
pub struct Model {
    products: Vec<i64>,
    index: FxHashMap<i64, u32>,
    buyers: Vec<u32>,
    popular: Vec<u32>,
    nb_off: Vec<usize>,
    nb: Vec<(u32, f32)>,
    customers: Vec<i64>,
    customer_index: FxHashMap<i64, u32>,
    offsets: Vec<usize>,
    history: Vec<u32>,
    unavailable: Vec<bool>,
}

/// Per-thread scoring buffers.
struct Scratch {
    score: Vec<f32>,
    touched: Vec<u32>,
}

impl Model {
    /// Products known to the model.
    pub fn products(&self) -> &[i64] {
        &self.products
    }

    /// Customers with a history, in the order they were added.
    pub fn customers(&self) -> &[i64] {
        &self.customers
    }

    /// Buyers of `product` in the training data.
    pub fn buyers(&self, product: i64) -> u32 {
        self.index
            .get(&product)
            .map_or(0, |&i| self.buyers[i as usize])
    }

    /// The similarity of two products (0 when either is unknown or they are no neighbours).
    pub fn similarity(&self, a: i64, b: i64) -> f32 {
        let (Some(&i), Some(&j)) = (self.index.get(&a), self.index.get(&b)) else {
            return 0.0;
        };
        self.nb[self.nb_off[i as usize]..self.nb_off[i as usize + 1]]
            .iter()
            .find(|(x, _)| *x == j)
            .map_or(0.0, |(_, s)| *s)
    }

    /// Marks products that may not be recommended (out of stock).
    pub fn set_unavailable(&mut self, products: impl IntoIterator<Item = i64>) {
        self.unavailable = vec![false; self.products.len()];
        for p in products {
            if let Some(&i) = self.index.get(&p) {
                self.unavailable[i as usize] = true;
            }
        }
    }

    fn available(&self, i: u32) -> bool {
        !self.unavailable.get(i as usize).copied().unwrap_or(false)
    }

    fn history_of(&self, customer: i64) -> &[u32] {
        match self.customer_index.get(&customer) {
            Some(&c) => &self.history[self.offsets[c as usize]..self.offsets[c as usize + 1]],
            None => &[],
        }
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            score: vec![0.0; self.products.len()],
            touched: Vec::new(),
        }
    }

    /// The top `n` products for `customer` (popularity alone for a customer without history).
    pub fn recommend(&self, customer: i64, n: usize) -> Vec<Pick> {
        let mut s = self.scratch();
        self.recommend_with(self.history_of(customer), n, true, &mut s)
    }

    /// The top `n` most popular products `customer` has not bought or returned: the baseline.
    pub fn popular_for(&self, customer: i64, n: usize) -> Vec<Pick> {
        let mut s = self.scratch();
        self.recommend_with(self.history_of(customer), n, false, &mut s)
    }

    /// Top `n` for every customer with a history, in parallel: (customer, picks) in the order
    /// the customers were added.
    pub fn recommend_all(&self, n: usize) -> Vec<(i64, Vec<Pick>)> {
        (0..self.customers.len())
            .into_par_iter()
            .map_init(
                || self.scratch(),
                |s, c| {
                    let h = &self.history[self.offsets[c]..self.offsets[c + 1]];
                    (self.customers[c], self.recommend_with(h, n, true, s))
                },
            )
            .collect()
    }

    /// Top `n` for the given customers (known or not), in parallel, in the given order.
    pub fn recommend_many(&self, customers: &[i64], n: usize, model: bool) -> Vec<Vec<Pick>> {
        customers
            .par_iter()
            .map_init(
                || self.scratch(),
                |s, &c| self.recommend_with(self.history_of(c), n, model, s),
            )
            .collect()
    }

    fn recommend_with(
        &self,
        history: &[u32],
        n: usize,
        use_model: bool,
        s: &mut Scratch,
    ) -> Vec<Pick> {
        let seen = |i: u32| {
            history
                .binary_search_by(|h| (h & !RETURNED).cmp(&i))
                .is_ok()
        };
        let mut picks: Vec<Pick> = Vec::with_capacity(n);
        if use_model {
            for &h in history {
                if h & RETURNED != 0 {
                    continue;
                }
                let i = h as usize;
                for &(j, sim) in &self.nb[self.nb_off[i]..self.nb_off[i + 1]] {
                    if s.score[j as usize] == 0.0 {
                        s.touched.push(j);
                    }
                    s.score[j as usize] += sim;
                }
            }
            let mut cands: Vec<(u32, f32)> = s
                .touched
                .iter()
                .filter(|&&j| s.score[j as usize] > 0.0 && self.available(j) && !seen(j))
                .map(|&j| (j, s.score[j as usize]))
                .collect();
            for &j in &s.touched {
                s.score[j as usize] = 0.0;
            }
            s.touched.clear();
            let better = |a: &(u32, f32), b: &(u32, f32)| {
                b.1.total_cmp(&a.1)
                    .then(self.products[a.0 as usize].cmp(&self.products[b.0 as usize]))
            };
            if cands.len() > n {
                cands.select_nth_unstable_by(n, better);
                cands.truncate(n);
            }
            cands.sort_unstable_by(better);
            picks.extend(cands.into_iter().map(|(j, score)| Pick {
                product: self.products[j as usize],
                score,
                popular: false,
            }));
        }
        if picks.len() < n {
            for &j in &self.popular {
                if picks.len() >= n {
                    break;
                }
                let p = self.products[j as usize];
                if self.buyers[j as usize] == 0
                    || !self.available(j)
                    || seen(j)
                    || picks.iter().any(|x| x.product == p)
                {
                    continue;
                }
                picks.push(Pick {
                    product: p,
                    score: 0.0,
                    popular: true,
                });
            }
        }
        picks
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_xoshiro::Xoshiro256PlusPlus;

    pub(crate) fn line(product: i64, day: Day) -> Line {
        Line {
            product,
            day,
            quantity: 1,
            returned: false,
        }
    }

    /// A shop with a planted structure: products 1–5 are bought by most customers at random;
    /// 20 pairs (100+k, 200+k) where a buyer of 100+k buys 200+k on a later day 90% of the time
    /// (each pair product far less popular than 1–5), and one long-tail product each. Popular
    /// products are bought before day 100. Customer c's lines, with days.
    pub(crate) fn planted(customers: i64, seed: u64) -> Vec<(i64, Vec<Line>)> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..customers)
            .map(|c| {
                let mut lines = Vec::new();
                for p in 1..=5 {
                    if rng.gen_bool(0.6) {
                        lines.push(line(p, rng.gen_range(0..100)));
                    }
                }
                let k = rng.gen_range(0..20);
                let day = rng.gen_range(0..120);
                lines.push(line(100 + k, day));
                if rng.gen_bool(0.9) {
                    lines.push(line(200 + k, day + rng.gen_range(1..60)));
                }
                // Noise: one product of a long tail.
                lines.push(line(1000 + rng.gen_range(0..300), rng.gen_range(0..200)));
                (c, lines)
            })
            .collect()
    }

    fn model_of(data: &[(i64, Vec<Line>)]) -> Model {
        let mut b = ModelBuilder::new(Options::default());
        for (c, l) in data {
            b.add_customer(*c, l);
        }
        b.build()
    }

    #[test]
    fn finds_the_planted_pairs_that_popularity_misses() {
        let data = planted(4000, 7);
        let m = model_of(&data);
        // A new customer who bought only 100+k.
        let mut found = 0;
        for k in 0..20 {
            let mut b = ModelBuilder::new(Options::default());
            for (c, l) in &data {
                b.add_customer(*c, l);
            }
            b.add_customer(-1, &[line(100 + k, 10)]);
            let m2 = b.build();
            let top = m2.recommend(-1, 3);
            if top.first().map(|p| p.product) == Some(200 + k) {
                found += 1;
            }
            let baseline = m2.popular_for(-1, 3);
            assert!(
                baseline.iter().all(|p| p.product != 200 + k),
                "popularity does not know the pair"
            );
        }
        assert_eq!(found, 20, "the partner is every pair's first pick");
        assert!(m.similarity(105, 205) > m.similarity(105, 1));
        assert!(m.similarity(105, 205) > m.similarity(105, 206));
    }

    #[test]
    fn never_recommends_what_was_bought_or_returned_or_is_out_of_stock() {
        let data = planted(2000, 3);
        let mut b = ModelBuilder::new(Options::default());
        for (c, l) in &data {
            b.add_customer(*c, l);
        }
        // Bought 103, returned 203 (its partner) and product 1.
        b.add_customer(
            -7,
            &[
                line(103, 5),
                Line {
                    product: 203,
                    day: 6,
                    quantity: -1,
                    returned: true,
                },
                Line {
                    product: 1,
                    day: 6,
                    quantity: 1,
                    returned: true,
                },
            ],
        );
        let mut m = b.build();
        m.set_unavailable([2]);
        let picks = m.recommend(-7, 30);
        assert_eq!(picks.len(), 30);
        for p in &picks {
            assert!(![103, 203, 1, 2].contains(&p.product), "{p:?}");
        }
        // Every customer: nothing of their own history.
        for (c, picks) in m.recommend_all(10) {
            if c < 0 {
                continue;
            }
            let own: Vec<i64> = data[c as usize].1.iter().map(|l| l.product).collect();
            assert!(picks
                .iter()
                .all(|p| !own.contains(&p.product) && p.product != 2));
            assert_eq!(picks.len(), 10);
        }
    }

    #[test]
    fn a_new_customer_gets_the_most_popular_products() {
        let m = model_of(&planted(1000, 1));
        let picks = m.recommend(123_456, 5);
        let mut got: Vec<i64> = picks.iter().map(|p| p.product).collect();
        got.sort_unstable();
        assert_eq!(got, vec![1, 2, 3, 4, 5]);
        assert!(picks.iter().all(|p| p.popular));
        for w in picks.windows(2) {
            assert!(m.buyers(w[0].product) >= m.buyers(w[1].product));
        }
    }

    #[test]
    fn lines_after_the_cutoff_are_not_learned() {
        let mut b = ModelBuilder::new(Options {
            before: Some(100),
            ..Options::default()
        });
        for c in 0..50 {
            b.add_customer(c, &[line(1, 10), line(2, 20), line(3, 150), line(4, 160)]);
        }
        let m = b.build();
        assert!(m.similarity(1, 2) > 0.0);
        assert_eq!(m.similarity(3, 4), 0.0);
        assert_eq!(m.buyers(3), 0);
        assert!(!m.products().contains(&3));
    }
}
