//! The optimiser against exhaustive search on small random problems.

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use retain_planner::optimise::{solve, Curve, GoalSpec, OptionSpec, Problem};

struct Case {
    goals: Vec<GoalSpec>,
    /// Per group: per option (goal index, curve index).
    groups: Vec<Vec<(usize, usize)>>,
    curves: Vec<Curve>,
    budget: f64,
}

impl Case {
    fn problem(&self) -> Problem<'_> {
        Problem {
            goals: &self.goals,
            groups: self
                .groups
                .iter()
                .map(|opts| {
                    opts.iter()
                        .map(|&(goal, c)| OptionSpec {
                            goal,
                            curve: &self.curves[c],
                        })
                        .collect()
                })
                .collect(),
            budget: self.budget,
        }
    }

    fn member_value(&self, g: usize, o: usize, k: usize) -> f64 {
        let (j, c) = self.groups[g][o];
        let goal = &self.goals[j];
        self.curves[c].values()[..k]
            .iter()
            .map(|v| goal.rate * v - goal.cost)
            .sum()
    }

    /// Exhaustive optimum over every goal per group and every prefix length.
    fn brute_force(&self) -> f64 {
        let mut best = 0.0f64;
        let mut pick = vec![(None, 0usize); self.groups.len()];
        self.enumerate(0, &mut pick, &mut best);
        best
    }

    fn enumerate(&self, g: usize, pick: &mut Vec<(Option<usize>, usize)>, best: &mut f64) {
        if g == self.groups.len() {
            let mut cost = 0.0;
            let mut value = 0.0;
            let mut per_goal = vec![0u64; self.goals.len()];
            for (h, &(o, k)) in pick.iter().enumerate() {
                if let Some(o) = o {
                    let (j, _) = self.groups[h][o];
                    cost += self.goals[j].cost * k as f64;
                    value += self.member_value(h, o, k);
                    per_goal[j] += k as u64;
                }
            }
            let caps_ok = self
                .goals
                .iter()
                .zip(&per_goal)
                .all(|(goal, &n)| goal.cap.is_none_or(|c| n <= c));
            if cost <= self.budget + 1e-9 && caps_ok && value > *best {
                *best = value;
            }
            return;
        }
        pick[g] = (None, 0);
        self.enumerate(g + 1, pick, best);
        for o in 0..self.groups[g].len() {
            let len = self.curves[self.groups[g][o].1].len();
            for k in 1..=len {
                pick[g] = (Some(o), k);
                self.enumerate(g + 1, pick, best);
            }
        }
        pick[g] = (None, 0);
    }

    /// Largest single-member value in the problem.
    fn max_member(&self) -> f64 {
        let mut m: f64 = 0.0;
        for opts in &self.groups {
            for &(j, c) in opts {
                if let Some(v) = self.curves[c].values().first() {
                    m = m.max(self.goals[j].rate * v - self.goals[j].cost);
                }
            }
        }
        m
    }
}

fn random_case(rng: &mut Xoshiro256PlusPlus, uniform_cost: bool) -> Case {
    let n_goals = rng.gen_range(1..=3);
    let goals: Vec<GoalSpec> = (0..n_goals)
        .map(|j| GoalSpec {
            rate: [0.05, 0.1, 0.2, 0.3][rng.gen_range(0..4)],
            cost: if uniform_cost {
                1.0
            } else {
                [0.5, 1.0, 2.0, 3.0][rng.gen_range(0..4)]
            },
            cap: if rng.gen_bool(0.3) {
                Some(rng.gen_range(1..=4))
            } else {
                None
            },
            priority: j as i64,
        })
        .collect();
    let n_groups = rng.gen_range(1..=3);
    let mut curves = Vec::new();
    let mut groups = Vec::new();
    for _ in 0..n_groups {
        // Two value bases per group, as in the planner.
        let n = rng.gen_range(0..=4);
        let a: Vec<f64> = (0..n)
            .map(|_| (rng.gen_range(0.0..60.0_f64) * 10.0).round() / 10.0)
            .collect();
        let b: Vec<f64> = (0..n)
            .map(|_| (rng.gen_range(0.0..60.0_f64) * 10.0).round() / 10.0)
            .collect();
        let base = curves.len();
        curves.push(Curve::new(a));
        curves.push(Curve::new(b));
        let mut opts = Vec::new();
        for j in 0..n_goals {
            if rng.gen_bool(0.7) {
                opts.push((j, base + rng.gen_range(0..2)));
            }
        }
        groups.push(opts);
    }
    let budget = if uniform_cost {
        f64::from(rng.gen_range(0..=10u32))
    } else {
        (rng.gen_range(0.0..15.0_f64) * 4.0).round() / 4.0
    };
    Case {
        goals,
        groups,
        curves,
        budget,
    }
}

fn check_feasible(case: &Case) -> retain_planner::optimise::Solution {
    let p = case.problem();
    let s = solve(&p);
    let mut cost = 0.0;
    let mut per_goal = vec![0u64; case.goals.len()];
    for (g, (&chosen, &k)) in s.chosen.iter().zip(&s.selected).enumerate() {
        match chosen {
            None => assert_eq!(k, 0),
            Some(o) => {
                let (j, c) = case.groups[g][o];
                assert!(k <= case.curves[c].len());
                assert!(
                    k <= s.positive[g][o],
                    "selects only members worth their cost"
                );
                cost += case.goals[j].cost * k as f64;
                per_goal[j] += k as u64;
            }
        }
    }
    assert!(
        cost <= case.budget + 1e-9,
        "cost {cost} over budget {}",
        case.budget
    );
    assert!((cost - s.cost).abs() < 1e-9);
    for (goal, &n) in case.goals.iter().zip(&per_goal) {
        if let Some(c) = goal.cap {
            assert!(n <= c, "cap {c} exceeded: {n}");
        }
    }
    let value: f64 = s
        .chosen
        .iter()
        .zip(&s.selected)
        .enumerate()
        .filter_map(|(g, (o, &k))| o.map(|o| case.member_value(g, o, k)))
        .sum();
    assert!(
        (value - s.value).abs() < 1e-6,
        "reported {} vs recomputed {value}",
        s.value
    );
    s
}

#[test]
fn within_one_member_of_the_exhaustive_optimum() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    for case_no in 0..1500 {
        let case = random_case(&mut rng, false);
        let s = check_feasible(&case);
        let best = case.brute_force();
        assert!(s.proven, "small searches finish");
        assert!(
            s.value <= best + 1e-6,
            "case {case_no}: {} beats the exhaustive {best}",
            s.value
        );
        // The relaxation of the chosen assignment bounds every integer plan.
        assert!(
            s.relaxed_value >= best - 1e-6,
            "case {case_no}: relaxed {} < optimum {best}",
            s.relaxed_value
        );
        assert!(
            s.value >= best - case.max_member() - 1e-6,
            "case {case_no}: {} more than one member below {best}",
            s.value
        );
    }
}

#[test]
fn exact_when_costs_are_uniform() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    for case_no in 0..1500 {
        let case = random_case(&mut rng, true);
        let s = check_feasible(&case);
        let best = case.brute_force();
        assert!(
            (s.value - best).abs() < 1e-6,
            "case {case_no}: {} vs exhaustive {best}",
            s.value
        );
    }
}

#[test]
fn exact_when_the_budget_does_not_bind() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(13);
    for case_no in 0..1500 {
        let mut case = random_case(&mut rng, false);
        case.budget = 1e9;
        let s = check_feasible(&case);
        let best = case.brute_force();
        assert!(
            (s.value - best).abs() < 1e-6,
            "case {case_no}: {} vs exhaustive {best}",
            s.value
        );
    }
}

#[test]
fn a_tight_budget_prefers_the_cheaper_goal() {
    // One group, two goals: A is worth more in total but costs 10× per member.
    let curve = Curve::new(vec![100.0; 10]);
    let goals = [
        GoalSpec {
            rate: 0.2,
            cost: 5.0,
            cap: None,
            priority: 1,
        }, // e = 15 per member
        GoalSpec {
            rate: 0.1,
            cost: 0.5,
            cap: None,
            priority: 2,
        }, // e = 9.5 per member
    ];
    let p = |budget| Problem {
        goals: &goals,
        groups: vec![vec![
            OptionSpec {
                goal: 0,
                curve: &curve,
            },
            OptionSpec {
                goal: 1,
                curve: &curve,
            },
        ]],
        budget,
    };
    let rich = solve(&p(1000.0));
    assert_eq!((rich.chosen[0], rich.selected[0]), (Some(0), 10));
    assert!((rich.value - 150.0).abs() < 1e-9);
    // 5.0 buys one member of A (15) or all ten of B (95).
    let poor = solve(&p(5.0));
    assert_eq!((poor.chosen[0], poor.selected[0]), (Some(1), 10));
    assert!((poor.value - 95.0).abs() < 1e-9);
    // The explanation prices the loser.
    let alt = &poor.alternatives[0][0];
    assert_eq!(alt.option, 0);
    assert!((alt.standalone_value - 150.0).abs() < 1e-9);
    assert!((alt.plan_delta - (15.0 - 95.0)).abs() < 1e-6, "{alt:?}");
}

#[test]
fn ties_go_to_the_better_priority() {
    let curve = Curve::new(vec![50.0, 40.0]);
    for (first, second) in [(1, 2), (2, 1)] {
        let goals = [
            GoalSpec {
                rate: 0.1,
                cost: 1.0,
                cap: None,
                priority: first,
            },
            GoalSpec {
                rate: 0.1,
                cost: 1.0,
                cap: None,
                priority: second,
            },
        ];
        let s = solve(&Problem {
            goals: &goals,
            groups: vec![vec![
                OptionSpec {
                    goal: 0,
                    curve: &curve,
                },
                OptionSpec {
                    goal: 1,
                    curve: &curve,
                },
            ]],
            budget: 100.0,
        });
        let winner = if first < second { 0 } else { 1 };
        assert_eq!(s.chosen[0], Some(winner));
    }
}

#[test]
fn caps_are_shared_across_groups() {
    let hi = Curve::new(vec![90.0, 80.0, 70.0]);
    let lo = Curve::new(vec![85.0, 60.0]);
    let goals = [GoalSpec {
        rate: 0.1,
        cost: 1.0,
        cap: Some(3),
        priority: 1,
    }];
    let s = solve(&Problem {
        goals: &goals,
        groups: vec![
            vec![OptionSpec {
                goal: 0,
                curve: &hi,
            }],
            vec![OptionSpec {
                goal: 0,
                curve: &lo,
            }],
        ],
        budget: 100.0,
    });
    // The three most valuable across both groups: 90, 85, 80.
    assert_eq!(s.selected, vec![2, 1]);
}

#[test]
fn zero_budget_selects_only_free_goals() {
    let curve = Curve::new(vec![10.0, 5.0]);
    let goals = [
        GoalSpec {
            rate: 0.5,
            cost: 1.0,
            cap: None,
            priority: 1,
        },
        GoalSpec {
            rate: 0.01,
            cost: 0.0,
            cap: None,
            priority: 2,
        },
    ];
    let groups = vec![vec![
        OptionSpec {
            goal: 0,
            curve: &curve,
        },
        OptionSpec {
            goal: 1,
            curve: &curve,
        },
    ]];
    let s = solve(&Problem {
        goals: &goals,
        groups: groups.clone(),
        budget: 0.0,
    });
    assert_eq!((s.chosen[0], s.selected[0], s.cost), (Some(1), 2, 0.0));
    let paid_only = [goals[0].clone()];
    let s = solve(&Problem {
        goals: &paid_only,
        groups: vec![vec![OptionSpec {
            goal: 0,
            curve: &curve,
        }]],
        budget: 0.0,
    });
    assert_eq!(s.selected[0], 0);
    assert_eq!(s.value, 0.0);
}

#[test]
fn unlimited_budgets_match_ample_ones() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(17);
    for case_no in 0..500 {
        let mut case = random_case(&mut rng, false);
        case.budget = 1e9;
        let ample = solve(&case.problem());
        for budget in [f64::MAX, f64::INFINITY] {
            case.budget = budget;
            let s = solve(&case.problem());
            assert_eq!(
                (&s.chosen, &s.selected),
                (&ample.chosen, &ample.selected),
                "case {case_no} at {budget}"
            );
            assert!(
                s.upper_bound.is_finite() && s.relaxed_value.is_finite(),
                "case {case_no}: {s:?}"
            );
        }
    }
}

#[test]
fn many_groups_stay_feasible_and_bounded() {
    // 400 groups × 4 options: past the exact-alternatives size, budget binding, shared caps.
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(23);
    let goals: Vec<GoalSpec> = (0..4)
        .map(|j| GoalSpec {
            rate: 0.02 + 0.01 * j as f64,
            cost: [0.1, 0.5, 0.05, 1.0][j],
            cap: if j == 1 { Some(2_000) } else { None },
            priority: j as i64,
        })
        .collect();
    let curves: Vec<Curve> = (0..800)
        .map(|_| {
            Curve::new(
                (0..rng.gen_range(1..60))
                    .map(|_| rng.gen_range(0.0..400.0))
                    .collect(),
            )
        })
        .collect();
    let groups = (0..400)
        .map(|g| {
            (0..4)
                .map(|j| OptionSpec {
                    goal: j,
                    curve: &curves[2 * g + j % 2],
                })
                .collect()
        })
        .collect();
    let p = Problem {
        goals: &goals,
        groups,
        budget: 900.0,
    };
    let s = solve(&p);
    assert!(s.cost <= 900.0 + 1e-9);
    assert!(s.value > 0.0 && s.value <= s.upper_bound + 1e-6);
    assert!(s.nodes <= retain_planner::optimise::NODE_LIMIT);
    let per_goal_1: usize = (0..400)
        .filter(|&g| s.chosen[g] == Some(1))
        .map(|g| s.selected[g])
        .sum();
    assert!(per_goal_1 <= 2_000);
    assert!(s
        .alternatives
        .iter()
        .flatten()
        .all(|a| a.plan_delta.is_finite() || a.plan_delta == f64::NEG_INFINITY));
}
