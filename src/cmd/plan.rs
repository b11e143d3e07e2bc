//! `retain plan`: matches the goals to the customers under a budget and stores the result as a
//! draft plan (campaigns with frozen recipients and holdouts); `plan show | approve | discard`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use clap::{Args as ClapArgs, Subcommand};
use retain_planner::expr::Vocabulary;
use retain_planner::{
    parse_catalogue, plan, Candidate, ConsentPolicy, Plan, PlanOptions, RfmScores, Stage,
    RFM_SEGMENTS,
};
use retain_store::{
    NewPlan, NewPlanCampaign, PlanState, PredictionBound, StoreError, VariantAssignment,
};
use serde_json::{json, Value};

use super::{exit, fail, Context};
use crate::output::{count, money, pct, print_json, Format, Table};

#[derive(Debug, ClapArgs)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:
  retain plan --budget 500
  retain plan --budget 500 --holdout 0.2 --seed 7 --format json
  retain plan --marketing-budget 20000 --stage growth      # budget = the recommended retention share
  retain plan show p3 --format markdown
  retain plan approve p3

Every customer group (segment × the goals it qualifies for) gets the goal worth the most expected
incremental value — audience × response rate × value − cost — within the budget; each customer
gets at most one campaign; unsendable customers (unsubscribed, suppressed, bounced, no consent,
invalid address, mailed within the frequency cap) are left out and counted. A share of every
campaign is held out to measure its effect. The plan is stored as a draft: review it with
`plan show`, then `plan approve` it (its campaigns may then be sent) or `plan discard` it.
--cautious reads the lower bound of each customer's CLV and expected purchases interval (see
`retain predict`) wherever the plan reads them, goal rules included.

Targeting (--target): by default a goal with a stored uplift model (`retain uplift fit`) ranks
its customers by their own predicted uplift × value − cost — the customers the email moves, not
those who would buy anyway — and the others by response rate × value − cost; `--target prior`
ignores the models, `--target uplift` fails when there is none. Budget, caps, consent and the
random holdout are the same either way.
  retain plan --budget 500 --target prior"
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a stored plan (default: the newest).
    Show {
        plan: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Approve a draft plan: its campaigns may be sent.
    Approve { plan: String },
    /// Discard a draft plan.
    Discard { plan: String },
}

#[derive(Debug, ClapArgs)]
pub struct CreateArgs {
    /// Money for this plan's sends (default: the recommended retention share of
    /// --marketing-budget; without either, unlimited: everyone worth their cost).
    #[arg(long, value_name = "AMOUNT")]
    pub budget: Option<f64>,
    /// The goals file (default: goals.toml in the workspace).
    #[arg(long, value_name = "FILE")]
    pub goals: Option<PathBuf>,
    /// Share of every campaign kept as a control group, 0.01–0.5 (default: planner.holdout); 0
    /// keeps none: everyone selected is mailed and no uplift can be measured.
    #[arg(long)]
    pub holdout: Option<f64>,
    /// Seed of the holdout draw (default: a random one, printed and stored with the plan).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The company's stage, for the retention/acquisition balance.
    #[arg(long, value_enum)]
    pub stage: Option<StageArg>,
    /// The whole marketing budget (acquisition + retention), for the balance.
    #[arg(long, value_name = "AMOUNT")]
    pub marketing_budget: Option<f64>,
    /// Mail only customers who opted in (default: also those whose consent is unknown).
    #[arg(long)]
    pub require_opt_in: bool,
    /// Plan as of this date (default: the day after the last order).
    #[arg(long)]
    pub as_of: Option<NaiveDate>,
    /// Value customers by the lower bounds of their CLV and expected purchases (the intervals of
    /// `retain predict`) instead of the point estimates: a plan that does not count on optimistic
    /// parameter estimates.
    #[arg(long)]
    pub cautious: bool,
    /// How a goal ranks its customers: `auto` by predicted uplift × value where `retain uplift
    /// fit` stored a model for the goal, else by response rate × value; `uplift` the same but an
    /// error when no goal has a model; `prior` response rate × value, models ignored.
    #[arg(long, value_enum, default_value = "auto")]
    pub target: TargetArg,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TargetArg {
    Auto,
    Uplift,
    Prior,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StageArg {
    Startup,
    Growth,
    Mature,
}

impl From<StageArg> for Stage {
    fn from(s: StageArg) -> Self {
        match s {
            StageArg::Startup => Stage::Startup,
            StageArg::Growth => Stage::Growth,
            StageArg::Mature => Stage::Mature,
        }
    }
}

pub async fn run(ctx: &Context, args: Args, quiet: bool) -> Result<()> {
    match args.command {
        Some(Command::Show { plan, format }) => show(ctx, plan, format).await,
        Some(Command::Approve { plan }) => transition(ctx, &plan, PlanState::Approved, quiet).await,
        Some(Command::Discard { plan }) => {
            transition(ctx, &plan, PlanState::Discarded, quiet).await
        }
        None => create(ctx, args.create).await,
    }
}

/// Budget used when neither --budget nor --marketing-budget is given: no limit.
const UNLIMITED: f64 = retain_planner::UNLIMITED_BUDGET;

fn check_format(format: Format) -> Result<()> {
    match format {
        Format::Table | Format::Json | Format::Markdown => Ok(()),
        other => Err(fail(
            2,
            format!("--format {other:?} is not offered here: use table, json or markdown")
                .to_lowercase(),
        )),
    }
}

async fn create(ctx: &Context, a: CreateArgs) -> Result<()> {
    check_format(a.format)?;
    let goals_path = a.goals.clone().unwrap_or_else(|| ctx.path("goals.toml"));
    let goals_text = match std::fs::read_to_string(&goals_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(fail(
                exit::PRECONDITION,
                format!(
                    "no goals file at {}: `retain init` writes the default catalogue, or pass --goals FILE",
                    goals_path.display()
                ),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", goals_path.display())),
    };

    let bound = if a.cautious {
        PredictionBound::Low
    } else {
        PredictionBound::Point
    };
    // Past campaigns' measured uplift first: their reports are read and let go before the
    // customers are loaded, so the two never share the memory bound.
    let measured = retain_results::results::measured_incremental_rates(&ctx.store).await;
    // Every segmented buyer with their record, features, prediction and last mailing: one
    // store call, one row per customer; the small lookups are read meanwhile.
    let (pool, suppressions, dues, attributes) = tokio::try_join!(
        ctx.store.plan_candidates(a.as_of, bound),
        ctx.store.suppression_list(),
        ctx.store.replenishment_due_days(),
        ctx.store.customer_attribute_names(),
    )?;
    let Some(pool) = pool else {
        return Err(fail(
            exit::PRECONDITION,
            "no orders yet: import some with `retain import orders FILE`",
        ));
    };
    if !pool.segmented {
        return Err(fail(
            exit::PRECONDITION,
            "no segments yet: run `retain segment` first",
        ));
    }
    let as_of = pool.as_of;
    let unsegmented = pool.unsegmented;
    let mut cautious_note = None;
    if a.cautious {
        cautious_note = match ctx.store.latest_prediction_run().await? {
            None => Some(
                "--cautious: there are no predictions (run `retain predict`), so no interval to be cautious with".to_string(),
            ),
            Some(r) if r.interval_level.is_none() => Some(
                "--cautious: the stored predictions were made before intervals were kept, so their point estimates are used: run `retain predict` again".to_string(),
            ),
            Some(_) => None,
        };
    }

    // Names the rules may use.
    let mut segment_names: BTreeSet<&str> = RFM_SEGMENTS.iter().copied().collect();
    segment_names.extend(pool.candidates.iter().map(|c| &*c.segment));
    let vocab = Vocabulary {
        segments: Some(segment_names.into_iter().map(str::to_string).collect()),
        templates: workspace_templates(&ctx.path("templates")),
        attributes: Some(attributes.into_iter().collect()),
    };
    let catalogue = parse_catalogue(&goals_text, &goals_path.display().to_string(), &vocab)
        .map_err(|e| fail(exit::BAD_INPUT, e.to_string()))?;
    let goals = catalogue.goals;

    let score = |x: i64| u8::try_from(x).ok().filter(|s| (1..=5).contains(s));
    let candidates: Vec<Candidate> = pool
        .by_id()
        .map(|c| Candidate {
            customer: &c.customer,
            features: &c.features,
            segment: &c.segment,
            scores: match (score(c.scores.0), score(c.scores.1), score(c.scores.2)) {
                (Some(r), Some(f), Some(m)) => Some(RfmScores { r, f, m }),
                _ => None,
            },
            prediction: c.prediction.as_ref(),
            suppression: c
                .customer
                .email
                .as_deref()
                .and_then(|e| suppressions.get(e)),
            last_campaign_at: c.last_mailed_at,
            due_day: dues.get(&c.customer.id).copied(),
        })
        .collect();

    let stage = a.stage.map(Stage::from);
    let budget = match (a.budget, a.marketing_budget) {
        (Some(b), _) => b,
        (None, Some(m)) => {
            retain_planner::balance::recommended_share(stage.unwrap_or_default()) * m
        }
        (None, None) => UNLIMITED,
    };
    let mut options = PlanOptions::new(budget, chrono::Utc::now().timestamp());
    options.frequency_cap_days = ctx.config.planner.frequency_cap_days;
    options.holdout_fraction = a.holdout.unwrap_or(ctx.config.planner.holdout);
    options.seed = a.seed.unwrap_or_else(random_seed);
    options.consent = if a.require_opt_in {
        ConsentPolicy::RequireOptIn
    } else {
        ConsentPolicy::AllowUnknown
    };
    options.stage = stage;
    options.marketing_budget = a.marketing_budget;
    options.control = Some(retain_planner::GlobalControl::of(
        &catalogue.program,
        options.now,
    ));
    let mut measured_note = None;
    match measured {
        Ok(rates) => {
            if !rates.is_empty() {
                measured_note = Some(format!(
                    "measured incremental response replaces the prior for: {}",
                    rates
                        .iter()
                        .map(|(g, r)| format!("{g} ({:.2}%)", r * 100.0))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            // Only goals of this catalogue: the planner warns about the others otherwise.
            options.observed_rates = rates
                .into_iter()
                .filter(|(g, _)| goals.iter().any(|x| &x.id == g))
                .collect();
        }
        Err(e) => {
            measured_note = Some(format!(
                "past campaign results could not be read ({e:#}); priors used"
            ))
        }
    }
    let uplift_note = if a.target == TargetArg::Prior {
        None
    } else {
        let models = retain_results::uplift::stored_models(&ctx.store).await?;
        let used: Vec<_> = models
            .iter()
            .filter(|m| goals.iter().any(|g| g.id == m.goal))
            .collect();
        if used.is_empty() && a.target == TargetArg::Uplift {
            return Err(fail(
                exit::PRECONDITION,
                "--target uplift: no uplift model for any goal of this catalogue: run `retain uplift fit` first",
            ));
        }
        for m in &used {
            let effects: Vec<f64> = candidates
                .iter()
                .map(|c| {
                    m.model
                        .conversion_effect_of(c.features, c.prediction, &c.customer.attributes)
                })
                .collect();
            options.uplift.insert(m.goal.clone(), effects);
        }
        (!used.is_empty()).then(|| {
            format!(
                "ranked by predicted uplift × value (stored uplift models): {}",
                used.iter()
                    .map(|m| format!("{} ({}-learner, {} members)", m.goal, m.learner, m.examples))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    };
    let mut planned = plan(&goals, &candidates, &options).map_err(|e| fail(2, e.to_string()))?;
    // The plan owns its audiences: the customers are let go before it is stored and printed,
    // on another thread (freeing a million records takes a second) while the plan is stored.
    drop(candidates);
    let freeing = super::free_apart(pool);
    planned.warnings.extend(uplift_note);
    planned.warnings.extend(measured_note);
    planned.warnings.extend(cautious_note);
    if unsegmented > 0 {
        planned.warnings.push(format!(
            "{unsegmented} customers have orders but no segment (segmented before their first order?): run `retain segment` again to include them"
        ));
    }

    let mut document = plan_document(&mut planned, budget)?;
    document["cautious"] = json!(a.cautious);
    document["target"] = json!(match a.target {
        TargetArg::Prior => "prior",
        _ if options.uplift.is_empty() => "prior",
        _ => "uplift",
    });
    let mut new_plan = NewPlan {
        budget: if budget == UNLIMITED { -1.0 } else { budget },
        used: planned.budget.used,
        expected_value: planned.expected_value,
        holdout_fraction: planned.holdout_fraction,
        seed: planned.seed,
        as_of: Some(as_of.format("%Y-%m-%d").to_string()),
        goals_file: Some(goals_path.display().to_string()),
        document: document.to_string(),
        // The member lists move to the stored plan, and from there to the printed view.
        campaigns: planned
            .campaigns
            .iter_mut()
            .map(|c| NewPlanCampaign {
                local_id: c.campaign_id.clone(),
                goal: c.goal.clone(),
                template: c.template.clone(),
                segments: c.segments.clone(),
                expected_value: c.expected_value,
                cost: c.cost,
                recipients: std::mem::take(&mut c.audience),
                holdout: std::mem::take(&mut c.holdout),
                details: campaign_details(c).to_string(),
            })
            .collect(),
    };
    let variants: Vec<(String, Vec<VariantAssignment>)> = planned
        .campaigns
        .iter()
        .filter(|c| !c.variants.is_empty())
        .map(|c| {
            let rows = c
                .variants
                .iter()
                .flat_map(|v| {
                    v.recipients.iter().map(|id| VariantAssignment {
                        customer_id: id.clone(),
                        variant: v.id.clone(),
                        template: v.template.clone(),
                    })
                })
                .collect();
            (c.campaign_id.clone(), rows)
        })
        .collect();
    let id = ctx
        .store
        .save_plan_with_variants(&new_plan, &variants)
        .await
        .context("storing the plan")?;
    let view = view_of(&id, PlanState::Draft, document, |local| {
        new_plan
            .campaigns
            .iter_mut()
            .find(|c| c.local_id == local)
            .map(|c| {
                (
                    std::mem::take(&mut c.recipients),
                    std::mem::take(&mut c.holdout),
                )
            })
    });
    // Joined so the records are freed within the command, whatever comes after it.
    let _ = freeing.join();
    render(&view, a.format)
}

fn random_seed() -> u64 {
    // No RNG dependency in the binary: the clock's nanoseconds mixed with the process id.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let x = t ^ (u64::from(std::process::id()) << 32);
    // SplitMix64 finaliser.
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) >> 11 // 53 bits: exact in JSON numbers
}

/// Template names in the workspace's `templates/` (file stems), or `None` without the folder.
fn workspace_templates(dir: &Path) -> Option<Vec<String>> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut names: BTreeSet<String> = BTreeSet::new();
    for e in entries.flatten() {
        let path = e.path();
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or("");
        if matches!(ext, "html" | "txt" | "subject") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                if stem != "base" {
                    names.insert(stem.to_string());
                }
            }
        }
    }
    Some(names.into_iter().collect())
}

/// The stored form of a plan: everything but the member lists (taken out while the plan is
/// written as JSON, then put back).
fn plan_document(p: &mut Plan, budget: f64) -> Result<Value> {
    let members: Vec<(Vec<String>, Vec<String>)> = p
        .campaigns
        .iter_mut()
        .map(|c| {
            (
                std::mem::take(&mut c.audience),
                std::mem::take(&mut c.holdout),
            )
        })
        .collect();
    let v = serde_json::to_value(&*p);
    for (c, (audience, holdout)) in p.campaigns.iter_mut().zip(members) {
        c.audience = audience;
        c.holdout = holdout;
    }
    let mut v = v?;
    if let Some(campaigns) = v.get_mut("campaigns").and_then(Value::as_array_mut) {
        for c in campaigns {
            if let Some(o) = c.as_object_mut() {
                o.remove("audience");
                o.remove("holdout");
                // Variants keep their id, template and size; their members are stored apart.
                if let Some(vs) = o.get_mut("variants").and_then(Value::as_array_mut) {
                    for v in vs {
                        let n = v
                            .get("recipients")
                            .and_then(Value::as_array)
                            .map_or(0, Vec::len);
                        v["recipients"] = json!(n);
                    }
                }
            }
        }
    }
    if budget == UNLIMITED {
        v["budget"]["total"] = Value::Null;
    }
    Ok(v)
}

fn campaign_details(c: &retain_planner::Campaign) -> Value {
    json!({
        "goal_name": c.goal_name,
        "response_rate": c.response_rate,
        "response_source": c.response_source,
        "window_days": c.window_days,
        "power": c.power,
        "rationale": c.rationale,
        "variants": c.variants.iter().map(|v| json!({
            "id": v.id, "template": v.template, "recipients": v.recipients.len(),
        })).collect::<Vec<_>>(),
        "variant_power": c.variant_power,
        "share_test": c.share_test,
        "steps": c.steps,
        "approve": c.approve,
    })
}

/// The plan as printed: the stored document with the plan id, state, global campaign ids and
/// member lists.
fn view_of(
    id: &str,
    state: PlanState,
    mut document: Value,
    mut members: impl FnMut(&str) -> Option<(Vec<String>, Vec<String>)>,
) -> Value {
    if let Some(campaigns) = document.get_mut("campaigns").and_then(Value::as_array_mut) {
        for c in campaigns {
            let local = c
                .get("campaign_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // Sorted here, not by the database, so every backend prints the same order.
            let (mut audience, mut holdout) = members(&local).unwrap_or_default();
            audience.sort_unstable();
            holdout.sort_unstable();
            c["campaign_id"] = Value::String(format!("{id}-{local}"));
            c["audience"] = json!(audience);
            c["holdout"] = json!(holdout);
        }
    }
    // Warnings name campaigns by their id within the plan: give them the stored ids.
    let locals: Vec<String> = document
        .get("campaigns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("campaign_id").and_then(Value::as_str))
        .filter_map(|g| g.strip_prefix(&format!("{id}-")).map(str::to_string))
        .collect();
    if let Some(warnings) = document.get_mut("warnings").and_then(Value::as_array_mut) {
        for w in warnings.iter_mut() {
            if let Some(text) = w.as_str() {
                let mut t = text.to_string();
                for local in &locals {
                    t = t.replace(
                        &format!("campaign {local}:"),
                        &format!("campaign {id}-{local}:"),
                    );
                }
                *w = Value::String(t);
            }
        }
    }
    let mut out = serde_json::Map::new();
    out.insert("plan_id".into(), Value::String(id.to_string()));
    out.insert("state".into(), Value::String(state.as_str().to_string()));
    if let Value::Object(map) = document {
        out.extend(map);
    }
    Value::Object(out)
}

async fn show(ctx: &Context, id: Option<String>, format: Format) -> Result<()> {
    check_format(format)?;
    let id = match id {
        Some(id) => id,
        None => ctx.store.latest_plan_id().await?.ok_or_else(|| {
            fail(
                exit::PRECONDITION,
                "no plans yet: make one with `retain plan`",
            )
        })?,
    };
    let Some(record) = ctx.store.plan(&id).await? else {
        return Err(fail(exit::PRECONDITION, format!("no plan {id}")));
    };
    let document: Value =
        serde_json::from_str(&record.document).context("reading the stored plan")?;
    let mut members: HashMap<String, (Vec<String>, Vec<String>)> = HashMap::new();
    for c in &record.campaigns {
        let mut audience = Vec::new();
        let mut holdout = Vec::new();
        for m in ctx.store.plan_members(&c.campaign_id).await? {
            if m.holdout {
                holdout.push(m.customer_id);
            } else {
                audience.push(m.customer_id);
            }
        }
        let local = c
            .campaign_id
            .strip_prefix(&format!("{id}-"))
            .unwrap_or(&c.campaign_id)
            .to_string();
        members.insert(local, (audience, holdout));
    }
    let view = view_of(&id, record.state, document, |local| {
        members.get(local).cloned()
    });
    render(&view, format)
}

async fn transition(ctx: &Context, id: &str, to: PlanState, quiet: bool) -> Result<()> {
    match ctx.store.set_plan_state(id, to).await {
        Ok(()) => {
            if !quiet {
                let next = match to {
                    PlanState::Approved => " Its campaigns may now be sent.",
                    _ => "",
                };
                println!("Plan {id} {}.{next}", to.as_str());
            }
            Ok(())
        }
        Err(StoreError::NotFound(what)) => Err(fail(exit::PRECONDITION, format!("no {what}"))),
        Err(StoreError::Conflict(why)) => Err(fail(exit::PRECONDITION, why)),
        Err(e) => Err(e.into()),
    }
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn len(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_array).map_or(0, Vec::len)
}

fn segments_of(c: &Value) -> String {
    c.get("segments")
        .and_then(Value::as_array)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn budget_line(v: &Value) -> String {
    let b = &v["budget"];
    match b.get("total").and_then(Value::as_f64) {
        Some(total) => format!("{} of {}", money(num(b, "used")), money(total)),
        None => format!("{} (no budget limit)", money(num(b, "used"))),
    }
}

fn render(v: &Value, format: Format) -> Result<()> {
    match format {
        Format::Json => print_json(v),
        Format::Markdown => {
            print!("{}", markdown(v));
            Ok(())
        }
        _ => {
            print!("{}", table(v));
            Ok(())
        }
    }
}

fn table(v: &Value) -> String {
    let mut out = format!(
        "Plan {} ({}): expected incremental value {}, spend {}, holdout {}, seed {}\n",
        text(v, "plan_id"),
        text(v, "state"),
        money(num(v, "expected_value")),
        budget_line(v),
        pct(num(v, "holdout_fraction")),
        v.get("seed").and_then(Value::as_u64).unwrap_or(0)
    );
    if v.get("cautious").and_then(Value::as_bool) == Some(true) {
        out.push_str("Cautious: customers valued at the lower bounds of their CLV and expected purchases intervals.\n");
    }
    let campaigns = v
        .get("campaigns")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if campaigns.is_empty() {
        out.push_str(&format!("\nNo campaigns: {}\n", text(v, "empty_reason")));
    } else {
        let mut t = Table::new([
            "campaign",
            "template",
            "segments",
            "recipients",
            "holdout",
            "cost",
            "expected value",
        ]);
        for c in &campaigns {
            t.row([
                text(c, "campaign_id").to_string(),
                text(c, "template").to_string(),
                segments_of(c),
                count(len(c, "audience") as i64),
                count(len(c, "holdout") as i64),
                money(num(c, "cost")),
                money(num(c, "expected_value")),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
        for c in &campaigns {
            out.push_str(&sequence_lines(c));
        }
    }
    if let Some(ex) = v
        .get("excluded")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
    {
        let parts: Vec<String> = ex
            .iter()
            .map(|(k, n)| format!("{} {}", count(n.as_i64().unwrap_or(0)), k.replace('_', " ")))
            .collect();
        out.push_str(&format!("\nExcluded: {}\n", parts.join(", ")));
    }
    let b = &v["balance"];
    out.push_str(&format!("\nBalance: {}\n", text(b, "reasoning")));
    if let Some(w) = v
        .get("warnings")
        .and_then(Value::as_array)
        .filter(|w| !w.is_empty())
    {
        out.push_str("\nWarnings:\n");
        for x in w.iter().filter_map(Value::as_str) {
            out.push_str(&format!("  - {x}\n"));
        }
    }
    if text(v, "state") == "draft" {
        out.push_str(&format!(
            "\nDraft. Details: retain plan show {id} --format markdown · approve: retain plan approve {id} · discard: retain plan discard {id}\n",
            id = text(v, "plan_id")
        ));
    }
    out
}

/// A campaign's A/B test (sizes and the power fixed now) and follow-up steps, one line each.
fn sequence_lines(c: &Value) -> String {
    let mut out = String::new();
    let id = text(c, "campaign_id");
    if let Some(vs) = c
        .get("variants")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
    {
        let arms: Vec<String> = vs
            .iter()
            .map(|v| {
                format!(
                    "{} ({}, {})",
                    text(v, "id"),
                    text(v, "template"),
                    count(v.get("recipients").and_then(Value::as_i64).unwrap_or(0))
                )
            })
            .collect();
        out.push_str(&format!("\n{id}: A/B test of {}\n", arms.join(" vs ")));
        let p = &c["variant_power"];
        out.push_str(&format!(
            "  fixed-horizon test: {} per variant, α {:.4} per pair (Bonferroni); a {:.2}-point difference is detected with power {:.2}{}\n",
            count(p.get("per_variant").and_then(Value::as_i64).unwrap_or(0)),
            num(p, "alpha_per_pair"),
            num(p, "min_difference") * 100.0,
            num(p, "power"),
            match p.get("required_per_variant").and_then(Value::as_i64) {
                Some(n) if p.get("adequate").and_then(Value::as_bool) != Some(true) =>
                    format!(" (needs {} per variant for 0.80)", count(n)),
                _ => String::new(),
            }
        ));
    }
    if let Some(steps) = c
        .get("steps")
        .and_then(Value::as_array)
        .filter(|v| !v.is_empty())
    {
        out.push_str(&format!(
            "\n{id}: follow-ups (approval: {})\n",
            text(c, "approve").replace('_', " ")
        ));
        for s in steps {
            out.push_str(&format!(
                "  step {}: day {}, when {}, template {}\n",
                s.get("number").and_then(Value::as_u64).unwrap_or(0),
                s.get("after_days").and_then(Value::as_u64).unwrap_or(0),
                text(s, "when_text"),
                text(s, "template")
            ));
        }
    }
    out
}

fn markdown(v: &Value) -> String {
    let mut out = format!("# Plan {} ({})\n\n", text(v, "plan_id"), text(v, "state"));
    out.push_str(&format!(
        "- Expected incremental value: **{}**\n- Spend: {}\n- Holdout: {} of every campaign, seed {}\n\n",
        money(num(v, "expected_value")),
        budget_line(v),
        pct(num(v, "holdout_fraction")),
        v.get("seed").and_then(Value::as_u64).unwrap_or(0)
    ));
    if v.get("cautious").and_then(Value::as_bool) == Some(true) {
        out.push_str("- Cautious: customers valued at the lower bounds of their CLV and expected purchases intervals\n\n");
    }
    let campaigns = v
        .get("campaigns")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if campaigns.is_empty() {
        out.push_str(&format!("No campaigns: {}\n\n", text(v, "empty_reason")));
    } else {
        out.push_str("| campaign | template | segments | recipients | holdout | cost | expected value |\n|---|---|---|---:|---:|---:|---:|\n");
        for c in &campaigns {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                text(c, "campaign_id"),
                text(c, "template"),
                segments_of(c),
                count(len(c, "audience") as i64),
                count(len(c, "holdout") as i64),
                money(num(c, "cost")),
                money(num(c, "expected_value"))
            ));
        }
        for c in &campaigns {
            out.push_str(&format!(
                "\n## {} — {}\n\n",
                text(c, "campaign_id"),
                text(c, "goal_name")
            ));
            let r = &c["rationale"];
            out.push_str(&format!("{}\n\n", text(r, "summary")));
            for part in r
                .get("parts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                out.push_str(&format!("- {}\n", text(part, "text")));
            }
            let p = &c["power"];
            out.push_str(&format!(
                "\nMeasurement: {} mailed vs {} held out, power {:.2} to detect the expected {:.2}-point uplift{}.\n",
                count(p.get("treatment").and_then(Value::as_i64).unwrap_or(0)),
                count(p.get("control").and_then(Value::as_i64).unwrap_or(0)),
                num(p, "power"),
                num(p, "expected_uplift") * 100.0,
                p.get("min_detectable_uplift")
                    .and_then(Value::as_f64)
                    .map(|m| format!(" (smallest detectable: {:.2} points)", m * 100.0))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(ex) = v
        .get("excluded")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
    {
        out.push_str("\n## Excluded\n\n");
        for (k, n) in ex {
            out.push_str(&format!(
                "- {}: {}\n",
                k.replace('_', " "),
                count(n.as_i64().unwrap_or(0))
            ));
        }
    }
    if let Some(un) = v
        .get("unassigned")
        .and_then(Value::as_array)
        .filter(|u| !u.is_empty())
    {
        out.push_str("\n## Not planned\n\n| segment | reason | customers |\n|---|---|---:|\n");
        for u in un {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                text(u, "segment"),
                text(u, "reason").replace('_', " "),
                count(u.get("customers").and_then(Value::as_i64).unwrap_or(0))
            ));
        }
    }
    out.push_str(&format!(
        "\n## Retention vs acquisition\n\n{}\n",
        text(&v["balance"], "reasoning")
    ));
    if let Some(w) = v
        .get("warnings")
        .and_then(Value::as_array)
        .filter(|w| !w.is_empty())
    {
        out.push_str("\n## Warnings\n\n");
        for x in w.iter().filter_map(Value::as_str) {
            out.push_str(&format!("- {x}\n"));
        }
    }
    out
}
