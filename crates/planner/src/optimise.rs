//! The optimiser: which goal each customer group gets and how many of its members to select,
//! maximising expected incremental value under a budget and per-goal audience caps.
//!
//! # Model
//! Customers are partitioned into *groups* (the planner uses segment × set of goals the customer
//! is eligible for). A group gets at most one goal — so a customer is in at most one campaign —
//! and then any number `k` of its members, always the `k` most valuable for that goal: a member
//! of value `v` under goal `j` (response rate `p_j`, cost `c_j`) is worth `e = p_j·v − c_j`, and
//! only members with `e > 0` are ever selected. The problem is
//!
//! ```text
//! maximise  Σ_groups Σ_{selected i} e_i
//! such that Σ cost ≤ budget,  Σ_{groups on goal j} k ≤ cap_j,  one goal per group.
//! ```
//!
//! # Algorithm
//! 1. For a fixed goal per group the problem is a knapsack whose items come in per-goal cost
//!    classes. Caps keep each goal's top `cap_j` members (they all cost the same); its linear
//!    relaxation is solved exactly through the Lagrangian dual
//!    `D(λ) = λ·B + Σ Σ_i max(0, e_i − λ·c_i)` (convex in λ, minimised by bisection on its
//!    subgradient; each term is a binary search over the sorted member values).
//! 2. The goal per group is chosen by branch and bound over the groups that have more than one
//!    option. A node's bound is the same dual with undecided groups taking their best option at
//!    each λ (and goal caps relaxed to per-group limits) — a valid upper bound. The search is
//!    exact; it stops after [`NODE_LIMIT`] nodes or [`WORK_LIMIT`] option evaluations (whichever
//!    comes first) and then reports the proven gap.
//! 3. Ties between assignments of equal value go to the goal of better priority.
//! 4. The chosen assignment is filled with whole members: everything above the dual threshold,
//!    then greedily by value per unit cost while anything still fits.
//!
//! The integer fill loses at most one member's value against the relaxation, so the plan's value
//! is within `max e_i` of the true optimum (and equal to it when the budget does not bind or all
//! goals cost the same and the budget is a multiple of that cost). Tests check this against
//! exhaustive search.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Branch-and-bound nodes explored before the search settles for the best assignment found.
pub const NODE_LIMIT: usize = 4_000;

/// Up to this many options in all, each alternative's `plan_delta` re-optimises the whole plan;
/// beyond, it is priced at the plan's Lagrange multiplier (an estimate).
pub const EXACT_ALTERNATIVES: usize = 600;

/// Option evaluations (one binary search each) the search may spend: bounds its time when there
/// are very many groups or goals.
pub const WORK_LIMIT: usize = 20_000_000;

/// What the optimiser needs to know of a goal.
#[derive(Debug, Clone, PartialEq)]
pub struct GoalSpec {
    /// Incremental response probability.
    pub rate: f64,
    /// Cost per selected member (in budget units).
    pub cost: f64,
    /// Most members the goal may select across all groups.
    pub cap: Option<u64>,
    /// Lower wins ties.
    pub priority: i64,
}

/// Member values of one group under one value basis, sorted from highest to lowest.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    values: Vec<f64>,
    prefix: Vec<f64>,
}

impl Curve {
    /// Builds a curve; `values` are sorted descending here (non-finite values count as 0).
    pub fn new(mut values: Vec<f64>) -> Self {
        for v in &mut values {
            if !v.is_finite() {
                *v = 0.0;
            }
        }
        values.sort_by(|a, b| b.total_cmp(a));
        Self::from_sorted(values)
    }

    /// Builds a curve from values already sorted descending and finite.
    pub fn from_sorted(values: Vec<f64>) -> Self {
        let mut prefix = Vec::with_capacity(values.len() + 1);
        let mut acc = 0.0;
        prefix.push(0.0);
        for v in &values {
            acc += v;
            prefix.push(acc);
        }
        Self { values, prefix }
    }

    pub fn values(&self) -> &[f64] {
        &self.values
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Number of members whose value is above `t`.
    fn count_above(&self, t: f64) -> usize {
        self.values.partition_point(|&v| v > t)
    }

    fn count_at_least(&self, t: f64) -> usize {
        self.values.partition_point(|&v| v >= t)
    }

    /// Sum of the `k` highest values.
    fn top_sum(&self, k: usize) -> f64 {
        self.prefix[k.min(self.values.len())]
    }
}

/// One goal a group may get: the goal's index and the group's member values under its basis.
#[derive(Debug, Clone, Copy)]
pub struct OptionSpec<'a> {
    pub goal: usize,
    pub curve: &'a Curve,
}

/// A whole optimisation problem.
#[derive(Debug, Clone)]
pub struct Problem<'a> {
    pub goals: &'a [GoalSpec],
    /// Per group, the goals it may get (in any order).
    pub groups: Vec<Vec<OptionSpec<'a>>>,
    pub budget: f64,
}

/// How another option of a group compares with the chosen one.
#[derive(Debug, Clone, PartialEq)]
pub struct Alternative {
    /// Index into the group's options.
    pub option: usize,
    /// Change of the plan's (relaxed) expected value had the group taken this option instead,
    /// the rest of the plan re-optimised; ≤ 0 at an optimum. With more than
    /// [`EXACT_ALTERNATIVES`] options in the problem, estimated at the plan's multiplier instead.
    pub plan_delta: f64,
    /// The option's value on its own: all its positive-value members, no budget.
    pub standalone_value: f64,
}

/// The optimiser's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Per group, the chosen option (index into its options), if any.
    pub chosen: Vec<Option<usize>>,
    /// Per group, how many of its top members are selected for the chosen option.
    pub selected: Vec<usize>,
    /// Expected value of the selection (whole members).
    pub value: f64,
    pub cost: f64,
    /// Value of the linear relaxation for the chosen assignment (≥ `value`).
    pub relaxed_value: f64,
    /// Proven upper bound on any assignment's relaxed value.
    pub upper_bound: f64,
    /// Whether the search finished (the assignment is optimal for the relaxation).
    pub proven: bool,
    pub nodes: usize,
    /// Per group, how its other options compare.
    pub alternatives: Vec<Vec<Alternative>>,
    /// Per group and option, the number of members with positive value.
    pub positive: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pick {
    Free,
    /// Option index and member limit.
    Fixed(usize, usize),
}

struct Solver<'a, 'p> {
    p: &'p Problem<'a>,
    /// Per group and option: members with positive value, capped by the goal's cap.
    limit: Vec<Vec<usize>>,
    lambda_max: f64,
    nodes: usize,
    /// Option evaluations so far (a cell: the dual is evaluated through `&self`).
    work: Cell<usize>,
}

impl Solver<'_, '_> {
    fn exhausted(&self) -> bool {
        self.nodes >= NODE_LIMIT || self.work.get() >= WORK_LIMIT
    }

    fn goal(&self, g: usize, o: usize) -> &GoalSpec {
        &self.p.goals[self.p.groups[g][o].goal]
    }

    /// Value and cost of option `o` of group `g` at multiplier λ with at most `limit` members.
    fn term(&self, g: usize, o: usize, limit: usize, lambda: f64) -> (f64, f64) {
        if limit == 0 {
            return (0.0, 0.0);
        }
        let opt = &self.p.groups[g][o];
        let goal = &self.p.goals[opt.goal];
        let k = if goal.cost <= 0.0 {
            limit
        } else {
            let t = (1.0 + lambda) * goal.cost / goal.rate;
            opt.curve.count_above(t).min(limit)
        };
        let value = goal.rate * opt.curve.top_sum(k) - (1.0 + lambda) * goal.cost * k as f64;
        (value, goal.cost * k as f64)
    }

    /// `(D(λ), cost of the maximiser)`.
    fn dual_at(&self, picks: &[Pick], lambda: f64) -> (f64, f64) {
        // λ = 0 contributes nothing even when the budget is unlimited (0 × ∞ would be NaN).
        let mut value = if lambda == 0.0 {
            0.0
        } else {
            lambda * self.p.budget
        };
        let mut cost = 0.0;
        for (g, pick) in picks.iter().enumerate() {
            self.work
                .set(self.work.get() + self.p.groups[g].len().max(1));
            match *pick {
                Pick::Fixed(o, limit) => {
                    let (v, c) = self.term(g, o, limit, lambda);
                    value += v;
                    cost += c;
                }
                Pick::Free => {
                    let mut best = (0.0, 0.0);
                    for o in 0..self.p.groups[g].len() {
                        let (v, c) = self.term(g, o, self.limit[g][o], lambda);
                        if v > best.0 || (v == best.0 && c < best.1) {
                            best = (v, c);
                        }
                    }
                    value += best.0;
                    cost += best.1;
                }
            }
        }
        (value, cost)
    }

    /// Minimises the dual: `(min value, λ with feasible maximiser)`.
    fn dual(&mut self, picks: &[Pick]) -> (f64, f64) {
        self.nodes += 1;
        let (v0, c0) = self.dual_at(picks, 0.0);
        if c0 <= self.p.budget {
            return (v0, 0.0);
        }
        let (mut lo, mut hi) = (0.0, self.lambda_max);
        let mut best = v0;
        let (vh, _) = self.dual_at(picks, hi);
        best = f64::min(best, vh);
        for _ in 0..200 {
            if hi - lo <= 1e-13 * (1.0 + hi) {
                break;
            }
            let mid = 0.5 * (lo + hi);
            let (v, c) = self.dual_at(picks, mid);
            best = best.min(v);
            if c > self.p.budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let (vh, _) = self.dual_at(picks, hi);
        (best.min(vh), hi)
    }

    /// Member limits for a complete assignment with the goal caps shared across groups.
    fn shared_limits(&self, choice: &[Option<usize>]) -> Vec<usize> {
        let mut limits: Vec<usize> = choice
            .iter()
            .enumerate()
            .map(|(g, c)| c.map_or(0, |o| self.limit[g][o]))
            .collect();
        for (j, goal) in self.p.goals.iter().enumerate() {
            let Some(cap) = goal.cap else { continue };
            let cap = usize::try_from(cap).unwrap_or(usize::MAX);
            let members: Vec<usize> = (0..choice.len())
                .filter(|&g| choice[g].is_some_and(|o| self.p.groups[g][o].goal == j))
                .collect();
            let total: usize = members.iter().map(|&g| limits[g]).sum();
            if total <= cap {
                continue;
            }
            // The cap-th highest value among the goal's members (all cost the same).
            let curve = |g: usize| self.p.groups[g][choice[g].unwrap_or(0)].curve;
            let count_ge = |x: f64| -> usize {
                members
                    .iter()
                    .map(|&g| curve(g).count_at_least(x).min(limits[g]))
                    .sum()
            };
            let (mut lo, mut hi) = (0u64, f64::MAX.to_bits());
            // Largest non-negative x with count_ge(x) ≥ cap (values are positive, bits monotone).
            while lo < hi {
                let mid = lo + (hi - lo).div_ceil(2);
                if count_ge(f64::from_bits(mid)) >= cap {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            let kth = f64::from_bits(lo);
            let above: Vec<usize> = members
                .iter()
                .map(|&g| curve(g).count_above(kth).min(limits[g]))
                .collect();
            // Members tied at the cap-th value fill the rest, earlier groups first.
            let mut left = cap.saturating_sub(above.iter().sum());
            for (&g, &a) in members.iter().zip(&above) {
                let ties = curve(g).count_at_least(kth).min(limits[g]) - a;
                let extra = ties.min(left);
                left -= extra;
                limits[g] = a + extra;
            }
        }
        limits
    }

    fn picks_of(&self, choice: &[Option<usize>]) -> Vec<Pick> {
        let limits = self.shared_limits(choice);
        choice
            .iter()
            .zip(limits)
            .map(|(c, l)| c.map_or(Pick::Fixed(0, 0), |o| Pick::Fixed(o, l)))
            .collect()
    }

    /// Relaxed value of a complete assignment and its dual multiplier.
    fn evaluate(&mut self, choice: &[Option<usize>]) -> (f64, f64, Vec<usize>) {
        let picks = self.picks_of(choice);
        let (v, lambda) = self.dual(&picks);
        let limits = picks
            .iter()
            .map(|p| if let Pick::Fixed(_, l) = p { *l } else { 0 })
            .collect();
        (v, lambda, limits)
    }
}

fn better(a: f64, b: f64) -> bool {
    a > b + 1e-9 * (1.0 + b.abs())
}

/// Solves a problem (see the module documentation).
pub fn solve(p: &Problem<'_>) -> Solution {
    let n = p.groups.len();
    let mut positive = Vec::with_capacity(n);
    let mut limit = Vec::with_capacity(n);
    let mut lambda_max: f64 = 0.0;
    for opts in &p.groups {
        let mut pos_row = Vec::with_capacity(opts.len());
        let mut lim_row = Vec::with_capacity(opts.len());
        for o in opts {
            let goal = &p.goals[o.goal];
            let pos = if goal.rate > 0.0 && goal.rate.is_finite() {
                o.curve.count_above(goal.cost / goal.rate)
            } else {
                0
            };
            let cap = goal
                .cap
                .map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
            if pos > 0 && goal.cost > 0.0 {
                lambda_max = lambda_max.max(goal.rate * o.curve.values[0] / goal.cost);
            }
            pos_row.push(pos);
            lim_row.push(pos.min(cap));
        }
        positive.push(pos_row);
        limit.push(lim_row);
    }
    let mut s = Solver {
        p,
        limit,
        lambda_max: lambda_max.max(1.0),
        nodes: 0,
        work: Cell::new(0),
    };

    // Options that can select anyone, per group, best standalone first.
    let standalone = |s: &Solver<'_, '_>, g: usize, o: usize| s.term(g, o, s.limit[g][o], 0.0).0;
    let viable: Vec<Vec<usize>> = (0..n)
        .map(|g| {
            let mut v: Vec<usize> = (0..p.groups[g].len())
                .filter(|&o| s.limit[g][o] > 0)
                .collect();
            v.sort_by(|&a, &b| {
                standalone(&s, g, b)
                    .total_cmp(&standalone(&s, g, a))
                    .then(s.goal(g, a).priority.cmp(&s.goal(g, b).priority))
            });
            v
        })
        .collect();

    // Root: every group free.
    let root: Vec<Pick> = (0..n)
        .map(|g| {
            if viable[g].is_empty() {
                Pick::Fixed(0, 0)
            } else {
                Pick::Free
            }
        })
        .collect();
    let (upper_bound, root_lambda) = s.dual(&root);

    // Incumbent: each group's best option at the root multiplier.
    let mut best_choice: Vec<Option<usize>> = (0..n)
        .map(|g| {
            viable[g].iter().copied().max_by(|&a, &b| {
                let va = s.term(g, a, s.limit[g][a], root_lambda).0;
                let vb = s.term(g, b, s.limit[g][b], root_lambda).0;
                va.total_cmp(&vb)
                    .then(s.goal(g, b).priority.cmp(&s.goal(g, a).priority))
            })
        })
        .collect();
    let (mut best_value, _, _) = s.evaluate(&best_choice);

    // Branch and bound over groups with a real choice, most valuable first.
    let mut order: Vec<usize> = (0..n).filter(|&g| viable[g].len() > 1).collect();
    order.sort_by(|&a, &b| {
        standalone(&s, b, viable[b][0]).total_cmp(&standalone(&s, a, viable[a][0]))
    });
    let mut proven = true;
    if !order.is_empty() && better(upper_bound, best_value) {
        let mut choice: Vec<Option<usize>> = (0..n)
            .map(|g| {
                if viable[g].len() == 1 {
                    Some(viable[g][0])
                } else {
                    None
                }
            })
            .collect();
        proven = branch(
            &mut s,
            &order,
            0,
            &viable,
            &mut choice,
            &mut best_choice,
            &mut best_value,
        );
    }

    // Re-optimising the plan for every alternative costs one dual per option: affordable up to
    // EXACT_ALTERNATIVES options, beyond that alternatives are priced at the plan's multiplier.
    let total_options: usize = p.groups.iter().map(Vec::len).sum();
    let exact = total_options <= EXACT_ALTERNATIVES;
    let (_, star, star_limits) = s.evaluate(&best_choice);
    // How option `o` of group `g` compares with the chosen one at the plan's multiplier.
    let local_delta = |s: &Solver<'_, '_>, g: usize, o: usize, cur: usize| {
        s.term(g, o, s.limit[g][o], star).0 - s.term(g, cur, star_limits[g], star).0
    };

    // Ties go to the better priority.
    for g in 0..n {
        let Some(cur) = best_choice[g] else { continue };
        let mut by_priority = viable[g].clone();
        by_priority.sort_by_key(|&o| s.goal(g, o).priority);
        for o in by_priority {
            if s.goal(g, o).priority >= s.goal(g, cur).priority {
                break;
            }
            // Only an option level with the chosen one at the multiplier can tie.
            let scale = 1e-9 * (1.0 + best_value.abs());
            if !exact && local_delta(&s, g, o, cur) < -scale {
                continue;
            }
            let mut trial = best_choice.clone();
            trial[g] = Some(o);
            let (v, _, _) = s.evaluate(&trial);
            if v >= best_value - scale {
                best_choice = trial;
                best_value = best_value.max(v);
                break;
            }
        }
    }

    // Alternatives: every other option of each chosen group.
    let mut alternatives = Vec::with_capacity(n);
    for g in 0..n {
        let mut alts = Vec::new();
        if let Some(cur) = best_choice[g] {
            for o in 0..p.groups[g].len() {
                if o == cur {
                    continue;
                }
                let plan_delta = if s.limit[g][o] == 0 {
                    f64::NEG_INFINITY
                } else if exact {
                    let mut trial = best_choice.clone();
                    trial[g] = Some(o);
                    s.evaluate(&trial).0 - best_value
                } else {
                    local_delta(&s, g, o, cur)
                };
                alts.push(Alternative {
                    option: o,
                    plan_delta,
                    standalone_value: standalone(&s, g, o),
                });
            }
        }
        alternatives.push(alts);
    }

    let (relaxed_value, lambda, limits) = s.evaluate(&best_choice);
    let (selected, value, cost) = fill(p, &best_choice, &limits, lambda);
    Solution {
        chosen: best_choice,
        selected,
        value,
        cost,
        relaxed_value,
        upper_bound: upper_bound.max(relaxed_value),
        proven,
        nodes: s.nodes,
        alternatives,
        positive,
    }
}

/// Depth-first branch and bound; returns false when the node limit cut the search short.
fn branch(
    s: &mut Solver<'_, '_>,
    order: &[usize],
    depth: usize,
    viable: &[Vec<usize>],
    choice: &mut Vec<Option<usize>>,
    best_choice: &mut Vec<Option<usize>>,
    best_value: &mut f64,
) -> bool {
    if depth == order.len() {
        let (v, _, _) = s.evaluate(choice);
        if better(v, *best_value) {
            *best_value = v;
            best_choice.clone_from(choice);
        }
        return true;
    }
    let g = order[depth];
    // Bound each child, explore the most promising first.
    let mut children: Vec<(f64, usize)> = Vec::with_capacity(viable[g].len());
    for &o in &viable[g] {
        if s.exhausted() {
            return false;
        }
        choice[g] = Some(o);
        let picks: Vec<Pick> = (0..choice.len())
            .map(|h| match choice[h] {
                Some(oo) => Pick::Fixed(oo, s.limit[h][oo]),
                None if viable[h].is_empty() => Pick::Fixed(0, 0),
                None => Pick::Free,
            })
            .collect();
        let (ub, _) = s.dual(&picks);
        children.push((ub, o));
    }
    children.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut complete = true;
    for (ub, o) in children {
        if !better(ub, *best_value) {
            continue;
        }
        if s.exhausted() {
            complete = false;
            break;
        }
        choice[g] = Some(o);
        if !branch(s, order, depth + 1, viable, choice, best_choice, best_value) {
            complete = false;
            break;
        }
    }
    choice[g] = None;
    complete
}

#[derive(PartialEq)]
struct Next {
    eff: f64,
    group: usize,
}

impl Eq for Next {}

impl Ord for Next {
    fn cmp(&self, other: &Self) -> Ordering {
        self.eff
            .total_cmp(&other.eff)
            .then(other.group.cmp(&self.group))
    }
}

impl PartialOrd for Next {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Whole-member fill of a fixed assignment: everything above the multiplier's threshold, then
/// greedily by value per unit cost. Returns per-group counts, value and cost.
fn fill(
    p: &Problem<'_>,
    choice: &[Option<usize>],
    limits: &[usize],
    lambda: f64,
) -> (Vec<usize>, f64, f64) {
    let n = choice.len();
    let mut k = vec![0usize; n];
    let mut cost = 0.0;
    for g in 0..n {
        let Some(o) = choice[g] else { continue };
        let opt = &p.groups[g][o];
        let goal = &p.goals[opt.goal];
        k[g] = if goal.cost <= 0.0 {
            limits[g]
        } else {
            opt.curve
                .count_above((1.0 + lambda) * goal.cost / goal.rate)
                .min(limits[g])
        };
        cost += goal.cost * k[g] as f64;
    }
    // The bisection leaves λ on the feasible side; guard against rounding all the same.
    while cost > p.budget * (1.0 + 1e-12) {
        let Some(g) = (0..n).filter(|&g| k[g] > 0).min_by(|&a, &b| {
            let ea = efficiency(p, choice, a, k[a] - 1);
            let eb = efficiency(p, choice, b, k[b] - 1);
            ea.total_cmp(&eb)
        }) else {
            break;
        };
        k[g] -= 1;
        cost -= p.goals[p.groups[g][choice[g].unwrap_or(0)].goal].cost;
    }
    let mut remaining = p.budget - cost;
    let mut heap = BinaryHeap::new();
    for g in 0..n {
        if choice[g].is_some() && k[g] < limits[g] {
            heap.push(Next {
                eff: efficiency(p, choice, g, k[g]),
                group: g,
            });
        }
    }
    while let Some(Next { group: g, .. }) = heap.pop() {
        let c = p.goals[p.groups[g][choice[g].unwrap_or(0)].goal].cost;
        if c > remaining + 1e-9 * (1.0 + p.budget) {
            continue; // nothing more of this goal fits: its members all cost the same.
        }
        remaining -= c;
        cost += c;
        k[g] += 1;
        if k[g] < limits[g] {
            heap.push(Next {
                eff: efficiency(p, choice, g, k[g]),
                group: g,
            });
        }
    }
    let mut value = 0.0;
    for g in 0..n {
        if let Some(o) = choice[g] {
            let opt = &p.groups[g][o];
            let goal = &p.goals[opt.goal];
            value += goal.rate * opt.curve.top_sum(k[g]) - goal.cost * k[g] as f64;
        }
    }
    (k, value, cost)
}

/// Value per unit cost of member `i` (by rank) of group `g`'s chosen option.
fn efficiency(p: &Problem<'_>, choice: &[Option<usize>], g: usize, i: usize) -> f64 {
    let opt = &p.groups[g][choice[g].unwrap_or(0)];
    let goal = &p.goals[opt.goal];
    let e = goal.rate * opt.curve.values[i] - goal.cost;
    if goal.cost <= 0.0 {
        f64::INFINITY
    } else {
        e / goal.cost
    }
}
