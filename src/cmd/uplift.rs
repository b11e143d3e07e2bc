//! `retain uplift fit | evaluate`: learn from past campaigns (mailed recipients against their
//! random holdouts) who a goal's email actually moves, store a model per goal for `retain plan`,
//! and measure the models on campaigns they were not fitted on.

use anyhow::Result;
use clap::{Args as ClapArgs, Subcommand};
use retain_results::uplift::{self, GoalEvaluation, GoalFit};
use retain_uplift::{Evaluation, FitOptions, LearnerKind};
use serde_json::{json, Value};

use super::{exit, fail, Context};
use crate::output::{count, print_json, Format, Table};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fit a model per goal on its past campaigns, store it, print its held-out evaluation.
    #[command(after_help = "Examples:
  retain uplift fit
  retain uplift fit --goal win_back --learner t --seed 7
  retain uplift fit --format json | jq '.[].evaluation.qini.coefficient'

Each sent campaign with a holdout contributes its members: the mailed recipients (treated) and
the held-out ones (control), with their recency, frequency, monetary value, tenure, CLV and
P(alive) as of the plan's date (a prediction made later is not used) and numeric customer
attributes, and whether they purchased within the campaign's attribution window (the same rule
as `retain report`). About 30% of a goal's campaigns (at least one) are left out of the fit and
the model is measured on them: the Qini coefficient (area between the Qini curve and random
targeting; 0 = no better than random) and uplift@k (treated minus control conversion rate
among the top k% by predicted uplift). The stored model is then refitted on all campaigns.
A goal needs at least two campaigns to be evaluated and 20 members in each arm to be fitted.
A campaign whose attribution window is still open counts the purchases made so far (in both
arms alike): fit again once the windows have closed.

Learners: t (default; T-learner: one outcome model per arm) or x (X-learner: borrows the large
mailed arm to estimate the effect on the small holdout side), both over gradient-boosted trees;
compare them with `--learner` on your own campaigns. The same data and --seed give the same
model.")]
    Fit(FitArgs),
    /// The stored models' evaluations: at fit time, and again on campaigns sent since.
    #[command(after_help = "Examples:
  retain uplift evaluate
  retain uplift evaluate --goal win_back --format json   # with the Qini curve's points
  retain uplift evaluate --format csv

`at fit` is the evaluation on the campaigns left out when the model was fitted; `since fit`
measures the stored model on campaigns sent after it was fitted (none yet: empty).")]
    Evaluate(EvaluateArgs),
}

#[derive(Debug, ClapArgs)]
pub struct FitArgs {
    /// Only this goal (default: every goal with usable campaigns).
    #[arg(long)]
    pub goal: Option<String>,
    /// t or x.
    #[arg(long, default_value = "t", value_parser = parse_learner)]
    pub learner: LearnerKind,
    /// Seed of the held-out campaign draw and the trees' row sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, ClapArgs)]
pub struct EvaluateArgs {
    /// Only this goal.
    #[arg(long)]
    pub goal: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

fn parse_learner(s: &str) -> Result<LearnerKind, String> {
    LearnerKind::parse(s).ok_or_else(|| format!("unknown learner `{s}`: expected t or x"))
}

fn check_format(format: Format) -> Result<()> {
    match format {
        Format::Table | Format::Json | Format::Csv => Ok(()),
        other => Err(fail(
            2,
            format!("--format {other:?} is not offered here: use table, json or csv")
                .to_lowercase(),
        )),
    }
}

pub async fn run(ctx: &Context, command: Command, quiet: bool) -> Result<()> {
    match command {
        Command::Fit(a) => fit(ctx, a, quiet).await,
        Command::Evaluate(a) => evaluate(ctx, a).await,
    }
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_default()
}

fn uplift_at(e: &Evaluation, percent: f64) -> Option<f64> {
    e.uplift_at
        .iter()
        .find(|u| u.percent == percent)
        .and_then(|u| u.uplift)
}

async fn fit(ctx: &Context, a: FitArgs, quiet: bool) -> Result<()> {
    check_format(a.format)?;
    let options = FitOptions {
        learner: a.learner,
        seed: a.seed,
        ..FitOptions::default()
    };
    let fits = uplift::fit_goals(&ctx.store, a.goal.as_deref(), &options, |c, n| {
        if !quiet {
            eprintln!("reading campaign {c}: {n} members");
        }
    })
    .await?;
    if fits.is_empty() {
        return Err(fail(
            exit::PRECONDITION,
            match &a.goal {
                Some(g) => format!("no sent campaign of goal `{g}` with a holdout to learn from"),
                None => "no sent campaign with a holdout to learn from: plan with a holdout, send, and wait for the attribution window".to_string(),
            },
        ));
    }
    let stored = fits.iter().any(|f| f.stored);
    match a.format {
        Format::Json => print_json(&fits)?,
        Format::Csv => fit_table(&fits).print_csv()?,
        _ => {
            print!("{}", fit_table(&fits).render());
            for f in &fits {
                if let Some(n) = &f.note {
                    println!("{}: {n}", f.goal);
                }
            }
        }
    }
    if !stored {
        return Err(fail(exit::PRECONDITION, "no model could be fitted"));
    }
    Ok(())
}

fn fit_table(fits: &[GoalFit]) -> Table {
    let mut t = Table::new([
        "goal",
        "learner",
        "campaigns",
        "members",
        "treated",
        "control",
        "held_out_campaigns",
        "qini",
        "uplift@10",
        "uplift@30",
        "average_effect",
        "stored",
    ]);
    for f in fits {
        let e = f.evaluation.as_ref();
        t.row([
            f.goal.clone(),
            f.learner.to_string(),
            count(f.campaigns as u64),
            count(f.members as u64),
            count(f.treated as u64),
            count(f.control as u64),
            e.map(|e| e.campaigns.len().to_string()).unwrap_or_default(),
            num(e.map(|e| e.qini.coefficient), 4),
            num(e.and_then(|e| uplift_at(e, 10.0)), 4),
            num(e.and_then(|e| uplift_at(e, 30.0)), 4),
            num(e.map(|e| e.qini.average_effect), 4),
            if f.stored { "yes" } else { "no" }.to_string(),
        ]);
    }
    t
}

/// One evaluation as JSON, with its Qini curve's points.
fn evaluation_json(e: &Evaluation) -> Value {
    json!({
        "campaigns": e.campaigns,
        "members": e.members,
        "treated": e.treated,
        "control": e.control,
        "qini": e.qini.coefficient,
        "average_effect": e.qini.average_effect,
        "qini_revenue": e.qini_revenue.coefficient,
        "uplift_at": e.uplift_at,
        "qini_curve": e.qini.points,
    })
}

async fn evaluate(ctx: &Context, a: EvaluateArgs) -> Result<()> {
    check_format(a.format)?;
    let evals = uplift::evaluate_goals(&ctx.store, a.goal.as_deref()).await?;
    if evals.is_empty() {
        return Err(fail(
            exit::PRECONDITION,
            "no uplift model stored: run `retain uplift fit` first",
        ));
    }
    match a.format {
        Format::Json => {
            let doc: Vec<Value> = evals
                .iter()
                .map(|g| {
                    json!({
                        "goal": g.goal,
                        "learner": g.learner,
                        "fitted_at": g.fitted_at,
                        "at_fit": g.at_fit.as_ref().map(stored_json),
                        "since_fit": g.since_fit.as_ref().map(evaluation_json),
                    })
                })
                .collect();
            print_json(&doc)?;
        }
        Format::Csv => eval_table(&evals).print_csv()?,
        _ => print!("{}", eval_table(&evals).render()),
    }
    Ok(())
}

/// A stored evaluation (the JSON of [`Evaluation`]) in the shape of [`evaluation_json`].
fn stored_json(v: &Value) -> Value {
    json!({
        "campaigns": v["campaigns"],
        "members": v["members"],
        "treated": v["treated"],
        "control": v["control"],
        "qini": v.pointer("/qini/coefficient"),
        "average_effect": v.pointer("/qini/average_effect"),
        "qini_revenue": v.pointer("/qini_revenue/coefficient"),
        "uplift_at": v["uplift_at"],
        "qini_curve": v.pointer("/qini/points"),
    })
}

fn eval_table(evals: &[GoalEvaluation]) -> Table {
    let mut t = Table::new([
        "goal",
        "learner",
        "evaluated_on",
        "campaigns",
        "members",
        "qini",
        "uplift@10",
        "uplift@20",
        "uplift@30",
        "uplift@50",
        "average_effect",
    ]);
    for g in evals {
        if let Some(v) = &g.at_fit {
            let at = |p: f64| -> String {
                v["uplift_at"]
                    .as_array()
                    .and_then(|a| a.iter().find(|u| u["percent"].as_f64() == Some(p)))
                    .and_then(|u| u["uplift"].as_f64())
                    .map(|x| format!("{x:.4}"))
                    .unwrap_or_default()
            };
            t.row([
                g.goal.clone(),
                g.learner.clone(),
                "held out at fit".to_string(),
                v["campaigns"]
                    .as_array()
                    .map(|a| a.len().to_string())
                    .unwrap_or_default(),
                v["members"].to_string(),
                num(v.pointer("/qini/coefficient").and_then(Value::as_f64), 4),
                at(10.0),
                at(20.0),
                at(30.0),
                at(50.0),
                num(v.pointer("/qini/average_effect").and_then(Value::as_f64), 4),
            ]);
        }
        if let Some(e) = &g.since_fit {
            t.row([
                g.goal.clone(),
                g.learner.clone(),
                "sent since fit".to_string(),
                e.campaigns.len().to_string(),
                e.members.to_string(),
                num(Some(e.qini.coefficient), 4),
                num(uplift_at(e, 10.0), 4),
                num(uplift_at(e, 20.0), 4),
                num(uplift_at(e, 30.0), 4),
                num(uplift_at(e, 50.0), 4),
                num(Some(e.qini.average_effect), 4),
            ]);
        }
        if g.at_fit.is_none() && g.since_fit.is_none() {
            t.row([
                g.goal.clone(),
                g.learner.clone(),
                "not evaluated (one campaign)".to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
    }
    t
}
