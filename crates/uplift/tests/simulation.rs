//! The learners on simulated campaign histories with a known effect: a thresholded heterogeneous
//! effect must be found (Qini against the oracle ranking, against random and against a response
//! model), and no effect must read as none.

use retain_uplift::simulate::{simulate, Scenario};
use retain_uplift::{
    evaluate, fit, fit_response, qini, split_by_campaign, uplift_at, Example, FitOptions,
    LearnerKind, Outcome, Schema,
};

fn split(scenario: Scenario, seed: u64) -> (Vec<Example>, Vec<Example>) {
    // 8 campaigns of 5,000 members, 20 % held out of each; 3 campaigns left out of the fit.
    let xs = simulate(40_000, 8, 0.8, scenario, seed);
    split_by_campaign(xs, 0.375, seed).expect("split")
}

/// Qini coefficients of random orderings of the same members: the noise band of "no skill".
fn random_band(held: &[Example], seed: u64) -> f64 {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut sq = 0.0;
    let reps = 20;
    for _ in 0..reps {
        let scores: Vec<f64> = held.iter().map(|_| rng.gen::<f64>()).collect();
        let c = qini(held, &scores, Outcome::Conversion).coefficient;
        sq += c * c;
    }
    (sq / f64::from(reps)).sqrt()
}

fn heterogeneous_effect_is_found(learner: LearnerKind) {
    let (train, held) = split(Scenario::Heterogeneous, 11);
    let options = FitOptions {
        learner,
        seed: 5,
        ..FitOptions::default()
    };
    let schema = Schema::default();
    let model = fit(&train, &schema, &options).expect("fit");
    let eval = evaluate(&model, &held);
    let learned = eval.qini.coefficient;

    // The oracle ranks by the true effect: the best any model can do on these members.
    let truth: Vec<f64> = held
        .iter()
        .map(|e| Scenario::Heterogeneous.effect(&e.features))
        .collect();
    let oracle = qini(&held, &truth, Outcome::Conversion).coefficient;
    // A response model ranks by who is likely to buy when mailed.
    let response = fit_response(&train, schema.len(), &options);
    let resp_scores: Vec<f64> = held.iter().map(|e| response.predict(&e.features)).collect();
    let by_response = qini(&held, &resp_scores, Outcome::Conversion).coefficient;
    let noise = random_band(&held, 3);

    eprintln!(
        "{learner:?}: qini {learned}, oracle {oracle}, response {by_response}, noise {noise}"
    );
    assert!(
        oracle > 0.0,
        "the planted effect shows in the data: {oracle}"
    );
    // At least half of what the true effect achieves …
    assert!(
        learned >= 0.5 * oracle,
        "{learner:?}: qini {learned} < half the oracle's {oracle}"
    );
    // … far outside the noise of random orderings …
    assert!(
        learned > 5.0 * noise,
        "{learner:?}: qini {learned} within 5× the random band {noise}"
    );
    // … and better than ranking by response.
    assert!(
        learned > by_response + 2.0 * noise,
        "{learner:?}: qini {learned} not above the response model's {by_response} (noise {noise})"
    );
    // The top 10 % by predicted uplift respond to the mail more than everyone does.
    let top = uplift_at(&held, &model_scores(&model, &held), 10.0).expect("both arms in top 10%");
    assert!(
        top > eval.qini.average_effect + 0.1,
        "uplift@10 {top} vs average effect {}",
        eval.qini.average_effect
    );
    // Customers with the planted effect are predicted a larger effect than lapsed ones.
    let mean_of = |f: &dyn Fn(&[f64]) -> bool| {
        let v: Vec<f64> = held
            .iter()
            .filter(|e| f(&e.features))
            .map(|e| model.predict(&e.features).conversion)
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let persuadable = mean_of(&|x| x[0] < 60.0 && x[1] >= 5.0);
    let put_off = mean_of(&|x| !(x[0] < 60.0 && x[1] >= 5.0) && x[3] > 150.0);
    assert!(persuadable > 0.15, "persuadable mean effect {persuadable}");
    assert!(put_off < 0.0, "big spenders' mean effect {put_off}");
}

fn model_scores(model: &retain_uplift::UpliftModel, xs: &[Example]) -> Vec<f64> {
    xs.iter()
        .map(|e| model.predict(&e.features).conversion)
        .collect()
}

#[test]
fn t_learner_finds_a_heterogeneous_effect() {
    heterogeneous_effect_is_found(LearnerKind::T);
}

#[test]
fn x_learner_finds_a_heterogeneous_effect() {
    heterogeneous_effect_is_found(LearnerKind::X);
}

#[test]
fn no_effect_reads_as_none() {
    let (train, held) = split(Scenario::None, 21);
    for learner in [LearnerKind::T, LearnerKind::X] {
        let options = FitOptions {
            learner,
            seed: 2,
            ..FitOptions::default()
        };
        let model = fit(&train, &Schema::default(), &options).expect("fit");
        let q = evaluate(&model, &held).qini.coefficient;
        let noise = random_band(&held, 9);
        assert!(
            q.abs() < 3.0 * noise,
            "{learner:?}: qini {q} outside 3× the random band {noise}"
        );
        // Predicted effects stay small on average (the heterogeneous scenario's persuadable
        // customers are predicted over 0.15).
        let mean_abs = held
            .iter()
            .map(|e| model.predict(&e.features).conversion.abs())
            .sum::<f64>()
            / held.len() as f64;
        assert!(
            mean_abs < 0.04,
            "{learner:?}: mean |predicted effect| {mean_abs}"
        );
    }
}

#[test]
fn same_seed_same_model() {
    let xs = simulate(3_000, 2, 0.8, Scenario::Heterogeneous, 1);
    let options = FitOptions::default();
    let a = fit(&xs, &Schema::default(), &options).expect("fit");
    let b = fit(&xs, &Schema::default(), &options).expect("fit");
    assert_eq!(a, b);
}

#[test]
fn one_arm_only_is_an_error() {
    let mut xs = simulate(500, 1, 0.8, Scenario::None, 1);
    for e in &mut xs {
        e.treated = true;
    }
    assert!(fit(&xs, &Schema::default(), &FitOptions::default()).is_err());
}
