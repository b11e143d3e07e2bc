//! Campaign plans (migration 0004): a plan with its campaigns and their frozen member lists
//! (recipients and holdout), and its life cycle draft → approved | discarded.

use std::fmt;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::keyed::KeyedTable;
use crate::rows::{OwnedVal, Val, WriteTx};
use crate::{now, Result, Store, StoreError};

/// Where a plan is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// Just planned: may be approved or discarded.
    Draft,
    /// Its campaigns may be sent.
    Approved,
    Discarded,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Approved => "approved",
            Self::Discarded => "discarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "draft" => Self::Draft,
            "approved" => Self::Approved,
            "discarded" => Self::Discarded,
            _ => return None,
        })
    }
}

impl fmt::Display for PlanState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A campaign to store with its plan.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlanCampaign {
    /// Id within the plan (e.g. `win_back-1`); stored as `<plan id>-<id>`.
    pub local_id: String,
    pub goal: String,
    pub template: String,
    pub segments: Vec<String>,
    pub expected_value: f64,
    pub cost: f64,
    /// Customer ids to mail.
    pub recipients: Vec<String>,
    /// Customer ids held out.
    pub holdout: Vec<String>,
    /// JSON: response rate, power, rationale…
    pub details: String,
}

/// A plan to store (the store assigns its id and times; it starts as a draft).
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlan {
    pub budget: f64,
    pub used: f64,
    pub expected_value: f64,
    pub holdout_fraction: f64,
    pub seed: u64,
    pub as_of: Option<String>,
    pub goals_file: Option<String>,
    /// The plan as JSON without member lists.
    pub document: String,
    pub campaigns: Vec<NewPlanCampaign>,
}

/// A stored campaign (without its members: see [`Store::plan_members`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanCampaignRecord {
    /// Unique across plans: `<plan id>-<goal>-<n>`.
    pub campaign_id: String,
    pub plan_id: String,
    pub goal: String,
    pub template: String,
    pub segments: Vec<String>,
    pub expected_value: f64,
    pub cost: f64,
    pub recipients: i64,
    pub holdout: i64,
    pub details: String,
}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRecord {
    pub id: String,
    pub state: PlanState,
    pub budget: f64,
    pub used: f64,
    pub expected_value: f64,
    pub holdout_fraction: f64,
    pub seed: u64,
    pub as_of: Option<String>,
    pub goals_file: Option<String>,
    pub document: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub campaigns: Vec<PlanCampaignRecord>,
}

/// One frozen member of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanMember {
    pub customer_id: String,
    pub holdout: bool,
}

const PLAN_COLS: &str = "id, state, budget, used, expected_value, holdout_fraction, seed, as_of, \
    goals_file, document, created_at, updated_at";
const CAMPAIGN_COLS: &str =
    "campaign_id, plan_id, goal, template, segments, expected_value, cost, \
    recipients, holdout, details";

/// Members, written by customer id and keyed by the customer key.
const MEMBERS: KeyedTable = KeyedTable {
    table: "plan_members",
    cols: &[("campaign_id", "TEXT"), ("holdout", "BIGINT")],
};

impl Store {
    /// Stores a plan as a draft with its campaigns and members, in one transaction. Returns the
    /// plan id (`p1`, `p2`, …).
    pub async fn save_plan(&self, plan: &NewPlan) -> Result<String> {
        let mut tx = self.write_tx().await?;
        let id = save_plan_in(&mut tx, plan).await?;
        tx.commit().await?;
        self.refresh_statistics(&["plan_members", "plan_campaigns"])
            .await;
        Ok(id)
    }
}

/// [`Store::save_plan`] inside the caller's transaction.
pub(crate) async fn save_plan_in(tx: &mut WriteTx<'_>, plan: &NewPlan) -> Result<String> {
    let seq = tx
        .fetch_int("SELECT COALESCE(MAX(seq), 0) + 1 FROM plans", &[])
        .await?
        .unwrap_or(1);
    let id = format!("p{seq}");
    let t = now();
    tx.execute(
        "INSERT INTO plans (id, seq, state, budget, used, expected_value, holdout_fraction, seed, \
         as_of, goals_file, document, created_at, updated_at) \
         VALUES ($1, $2, 'draft', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            id.as_str().into(),
            seq.into(),
            plan.budget.into(),
            plan.used.into(),
            plan.expected_value.into(),
            plan.holdout_fraction.into(),
            // Stored as the same 64 bits, signed.
            (plan.seed as i64).into(),
            plan.as_of.as_deref().into(),
            plan.goals_file.as_deref().into(),
            plan.document.as_str().into(),
            t.into(),
            t.into(),
        ],
    )
    .await?;
    let campaign_ids: Vec<String> = plan
        .campaigns
        .iter()
        .map(|c| format!("{id}-{}", c.local_id))
        .collect();
    for (position, (c, campaign_id)) in plan.campaigns.iter().zip(&campaign_ids).enumerate() {
        let segments = serde_json::to_string(&c.segments).unwrap_or_else(|_| "[]".into());
        tx.execute(
            "INSERT INTO plan_campaigns (campaign_id, plan_id, position, goal, template, segments, \
             expected_value, cost, recipients, holdout, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                campaign_id.as_str().into(),
                id.as_str().into(),
                (position as i64).into(),
                c.goal.as_str().into(),
                c.template.as_str().into(),
                segments.as_str().into(),
                c.expected_value.into(),
                c.cost.into(),
                (c.recipients.len() as i64).into(),
                (c.holdout.len() as i64).into(),
                c.details.as_str().into(),
            ],
        )
        .await?;
    }
    // Every campaign's recipients, then its holdout; all campaigns' members in one write.
    let sizes: Vec<usize> = plan
        .campaigns
        .iter()
        .map(|c| c.recipients.len() + c.holdout.len())
        .collect();
    MEMBERS
        .insert_groups(
            tx,
            &sizes,
            |g, i| {
                let c = &plan.campaigns[g];
                match i.checked_sub(c.recipients.len()) {
                    None => c.recipients[i].as_str(),
                    Some(h) => c.holdout[h].as_str(),
                }
            },
            |g, i, out| {
                out.extend([
                    Val::from(campaign_ids[g].as_str()),
                    Val::from(i64::from(i >= plan.campaigns[g].recipients.len())),
                ])
            },
        )
        .await?;
    Ok(id)
}

impl Store {
    /// Every plan, newest first, with its campaigns.
    pub async fn plans(&self) -> Result<Vec<PlanRecord>> {
        let rows = sqlx::query(&format!("SELECT {PLAN_COLS} FROM plans ORDER BY seq DESC"))
            .fetch_all(self.pool())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut p = plan_from_row(r)?;
            p.campaigns = self.plan_campaigns(&p.id).await?;
            out.push(p);
        }
        Ok(out)
    }

    /// One plan with its campaigns.
    pub async fn plan(&self, id: &str) -> Result<Option<PlanRecord>> {
        let row = sqlx::query(&format!("SELECT {PLAN_COLS} FROM plans WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut p = plan_from_row(&row)?;
        p.campaigns = self.plan_campaigns(&p.id).await?;
        Ok(Some(p))
    }

    /// The newest plan's id, if any.
    pub async fn latest_plan_id(&self) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM plans ORDER BY seq DESC LIMIT 1")
                .fetch_optional(self.pool())
                .await?,
        )
    }

    async fn plan_campaigns(&self, plan_id: &str) -> Result<Vec<PlanCampaignRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {CAMPAIGN_COLS} FROM plan_campaigns WHERE plan_id = $1 ORDER BY position"
        ))
        .bind(plan_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(campaign_from_row).collect()
    }

    /// A stored campaign and the state of its plan (a campaign may be sent once its plan is
    /// approved).
    pub async fn plan_campaign(
        &self,
        campaign_id: &str,
    ) -> Result<Option<(PlanCampaignRecord, PlanState)>> {
        let row = sqlx::query(&format!(
            "SELECT {}, p.state FROM plan_campaigns c JOIN plans p ON p.id = c.plan_id WHERE c.campaign_id = $1",
            CAMPAIGN_COLS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
        ))
        .bind(campaign_id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get(10)?;
        let state = PlanState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("plan state '{state}'")))?;
        Ok(Some((campaign_from_row(&row)?, state)))
    }

    /// A campaign's frozen members, recipients first, each group by customer id.
    pub async fn plan_members(&self, campaign_id: &str) -> Result<Vec<PlanMember>> {
        let sql = "SELECT c.id, m.holdout FROM plan_members m JOIN customers c ON c.key = m.ckey \
             WHERE m.campaign_id = $1 ORDER BY m.ckey";
        let binds = vec![OwnedVal::Text(Some(campaign_id.to_string()))];
        let mut out = self
            .read_rows(sql.to_string(), binds, |r| {
                Ok(PlanMember {
                    customer_id: r.text(0)?,
                    holdout: r.int(1)? != 0,
                })
            })
            .await?;
        // Sorted here: text collation differs between the backends.
        out.sort_unstable_by(|a, b| {
            (a.holdout, a.customer_id.as_str()).cmp(&(b.holdout, b.customer_id.as_str()))
        });
        Ok(out)
    }

    /// [`Store::plan_members`] with each member's segment in segmentation run `run` (`None`
    /// when the member is not in it), joined member by member through the assignments'
    /// primary key — never reading the run's other customers.
    pub async fn plan_members_in_run(
        &self,
        campaign_id: &str,
        run: i64,
    ) -> Result<Vec<(PlanMember, Option<String>)>> {
        let sql = "SELECT c.id, m.holdout, a.segment FROM plan_members m \
             JOIN customers c ON c.key = m.ckey \
             LEFT JOIN segment_assignments a ON a.run_id = $1 AND a.ckey = m.ckey \
             WHERE m.campaign_id = $2 ORDER BY m.ckey";
        let binds = vec![
            OwnedVal::Int(Some(run)),
            OwnedVal::Text(Some(campaign_id.to_string())),
        ];
        let mut out = self
            .read_rows(sql.to_string(), binds, |r| {
                Ok((
                    PlanMember {
                        customer_id: r.text(0)?,
                        holdout: r.int(1)? != 0,
                    },
                    r.opt_text(2)?,
                ))
            })
            .await?;
        // Sorted here, as `plan_members`: text collation differs between the backends.
        out.sort_unstable_by(|(a, _), (b, _)| {
            (a.holdout, a.customer_id.as_str()).cmp(&(b.holdout, b.customer_id.as_str()))
        });
        Ok(out)
    }

    /// Moves a draft plan to `to` (approved or discarded). Any other move is a conflict; an
    /// unknown plan is not found.
    pub async fn set_plan_state(&self, id: &str, to: PlanState) -> Result<()> {
        if to == PlanState::Draft {
            return Err(StoreError::Conflict(format!(
                "plan {id} cannot go back to draft"
            )));
        }
        let r = sqlx::query(
            "UPDATE plans SET state = $1, updated_at = $2 WHERE id = $3 AND state = 'draft'",
        )
        .bind(to.as_str())
        .bind(now())
        .bind(id)
        .execute(self.pool())
        .await?;
        if r.rows_affected() == 1 {
            return Ok(());
        }
        let state: Option<String> = sqlx::query_scalar("SELECT state FROM plans WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        match state {
            None => Err(StoreError::NotFound(format!("plan {id}"))),
            Some(s) => Err(StoreError::Conflict(format!(
                "plan {id} is {s}, not a draft"
            ))),
        }
    }
}

fn plan_from_row(r: &AnyRow) -> Result<PlanRecord> {
    let state: String = r.try_get(1)?;
    Ok(PlanRecord {
        id: r.try_get(0)?,
        state: PlanState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("plan state '{state}'")))?,
        budget: r.try_get(2)?,
        used: r.try_get(3)?,
        expected_value: r.try_get(4)?,
        holdout_fraction: r.try_get(5)?,
        seed: r.try_get::<i64, _>(6)? as u64,
        as_of: r.try_get(7)?,
        goals_file: r.try_get(8)?,
        document: r.try_get(9)?,
        created_at: r.try_get(10)?,
        updated_at: r.try_get(11)?,
        campaigns: Vec::new(),
    })
}

fn campaign_from_row(r: &AnyRow) -> Result<PlanCampaignRecord> {
    let segments: String = r.try_get(4)?;
    Ok(PlanCampaignRecord {
        campaign_id: r.try_get(0)?,
        plan_id: r.try_get(1)?,
        goal: r.try_get(2)?,
        template: r.try_get(3)?,
        segments: serde_json::from_str(&segments)
            .map_err(|e| StoreError::Corrupt(format!("campaign segments '{segments}': {e}")))?,
        expected_value: r.try_get(5)?,
        cost: r.try_get(6)?,
        recipients: r.try_get(7)?,
        holdout: r.try_get(8)?,
        details: r.try_get(9)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn sample(n: usize) -> NewPlan {
        NewPlan {
            budget: 100.0,
            used: 12.5,
            expected_value: 40.0,
            holdout_fraction: 0.1,
            seed: u64::MAX - 1,
            as_of: Some("2024-01-31".into()),
            goals_file: Some("goals.toml".into()),
            document: "{}".into(),
            campaigns: vec![NewPlanCampaign {
                local_id: "win_back-1".into(),
                goal: "win_back".into(),
                template: "win_back".into(),
                segments: vec!["At Risk".into(), "Can't Lose Them".into()],
                expected_value: 40.0,
                cost: 12.5,
                recipients: (0..n).map(|i| format!("c{i:05}")).collect(),
                holdout: vec!["h1".into(), "h2".into()],
                details: "{\"response_rate\":0.03}".into(),
            }],
        }
    }

    async fn round_trip(store: &Store) {
        let mut ids: Vec<String> = (0..12_000).map(|i| format!("c{i:05}")).collect();
        ids.extend(["h1".to_string(), "h2".to_string()]);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        crate::test_support::customers(store, &ids).await;
        let id = store.save_plan(&sample(12_000)).await.expect("save");
        let id2 = store.save_plan(&sample(3)).await.expect("save again");
        assert_ne!(id, id2);
        assert_eq!(
            store.latest_plan_id().await.expect("latest"),
            Some(id2.clone())
        );
        let p = store.plan(&id).await.expect("read").expect("exists");
        assert_eq!(p.state, PlanState::Draft);
        assert_eq!(p.seed, u64::MAX - 1);
        assert_eq!(p.campaigns.len(), 1);
        let c = &p.campaigns[0];
        assert_eq!(c.campaign_id, format!("{id}-win_back-1"));
        assert_eq!(
            c.segments,
            vec!["At Risk".to_string(), "Can't Lose Them".to_string()]
        );
        assert_eq!((c.recipients, c.holdout), (12_000, 2));
        let members = store.plan_members(&c.campaign_id).await.expect("members");
        assert_eq!(members.len(), 12_002);
        assert_eq!(members.iter().filter(|m| m.holdout).count(), 2);
        assert!(!members[0].holdout);
        // The same members with their segment in a segmentation run that holds three of them.
        let seg = |id: &str, s: &str| crate::SegmentAssignmentRow {
            customer_id: id.into(),
            cluster: 0,
            segment: s.into(),
            r: 1,
            f: 1,
            m: 1,
        };
        let run = store
            .save_segment_run(
                &crate::NewSegmentRun {
                    method: "rfm".into(),
                    k: 2,
                    seed: 1,
                    as_of: None,
                    customers: 3,
                    params: "{}".into(),
                    k_scores: "[]".into(),
                    model: "{}".into(),
                },
                &[],
                &[
                    seg("c00007", "At Risk"),
                    seg("h2", "Can't Lose Them"),
                    seg("c00000", "At Risk"),
                ],
            )
            .await
            .expect("a segment run");
        let with = store
            .plan_members_in_run(&c.campaign_id, run)
            .await
            .expect("members with segments");
        assert_eq!(
            with.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
            members
        );
        let segment_of = |id: &str| {
            with.iter()
                .find(|(m, _)| m.customer_id == id)
                .and_then(|(_, s)| s.clone())
        };
        assert_eq!(segment_of("c00007").as_deref(), Some("At Risk"));
        assert_eq!(segment_of("h2").as_deref(), Some("Can't Lose Them"));
        assert_eq!(segment_of("c00001"), None);
        assert_eq!(with.iter().filter(|(_, s)| s.is_some()).count(), 3);
        let (_, state) = store
            .plan_campaign(&c.campaign_id)
            .await
            .expect("campaign")
            .expect("exists");
        assert_eq!(state, PlanState::Draft);

        store
            .set_plan_state(&id, PlanState::Approved)
            .await
            .expect("approve");
        assert!(matches!(
            store.set_plan_state(&id, PlanState::Discarded).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.set_plan_state("p999", PlanState::Approved).await,
            Err(StoreError::NotFound(_))
        ));
        store
            .set_plan_state(&id2, PlanState::Discarded)
            .await
            .expect("discard");
        let all = store.plans().await.expect("all");
        assert_eq!(
            all.iter()
                .map(|p| (p.id.clone(), p.state))
                .collect::<Vec<_>>(),
            vec![(id2, PlanState::Discarded), (id, PlanState::Approved)]
        );
    }

    /// Several campaigns' members are written in one go: a customer may be in two campaigns of
    /// a plan, but not twice in one, and an unknown customer fails the whole plan.
    async fn members_of_several_campaigns(store: &Store) {
        crate::test_support::customers(store, &["a", "b", "c", "d"]).await;
        let campaign = |local: &str, recipients: &[&str], holdout: &[&str]| NewPlanCampaign {
            local_id: local.into(),
            recipients: recipients.iter().map(|s| s.to_string()).collect(),
            holdout: holdout.iter().map(|s| s.to_string()).collect(),
            ..sample(0).campaigns[0].clone()
        };
        let mut plan = sample(0);
        plan.campaigns = vec![
            campaign("x", &["d", "a"], &["b"]),
            campaign("y", &[], &[]),
            campaign("z", &["c", "a"], &[]),
        ];
        let id = store.save_plan(&plan).await.expect("save");
        let members = |local: &str| {
            let campaign_id = format!("{id}-{local}");
            async move {
                let mut m: Vec<(String, bool)> = store
                    .plan_members(&campaign_id)
                    .await
                    .expect("members")
                    .into_iter()
                    .map(|m| (m.customer_id, m.holdout))
                    .collect();
                m.sort();
                m
            }
        };
        let owned = |v: &[(&str, bool)]| -> Vec<(String, bool)> {
            v.iter().map(|(c, h)| (c.to_string(), *h)).collect()
        };
        assert_eq!(
            members("x").await,
            owned(&[("a", false), ("b", true), ("d", false)])
        );
        assert!(members("y").await.is_empty());
        assert_eq!(members("z").await, owned(&[("a", false), ("c", false)]));

        let before = store.plans().await.expect("plans").len();
        plan.campaigns = vec![campaign("x", &["a"], &["b"]), campaign("z", &["c"], &["c"])];
        let twice = store.save_plan(&plan).await;
        assert!(twice.is_err(), "c twice in campaign z: {twice:?}");
        plan.campaigns = vec![campaign("x", &["a"], &[]), campaign("z", &["nobody"], &[])];
        let unknown = store.save_plan(&plan).await;
        assert!(
            matches!(unknown, Err(StoreError::UnknownCustomer(ref c)) if c == "nobody"),
            "{unknown:?}"
        );
        assert_eq!(
            store.plans().await.expect("plans").len(),
            before,
            "nothing stored"
        );
    }

    #[tokio::test]
    async fn members_of_several_campaigns_on_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        members_of_several_campaigns(&store).await;
    }

    #[tokio::test]
    async fn members_of_several_campaigns_on_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            members_of_several_campaigns(&store).await;
        }
    }

    #[tokio::test]
    async fn plans_round_trip_on_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        round_trip(&store).await;
    }

    #[tokio::test]
    async fn plans_round_trip_on_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            round_trip(&store).await;
        }
    }
}
