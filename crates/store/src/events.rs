//! Tracking events: opens, clicks, unsubscribes and views of a send, each with its time, a
//! bot/prefetch flag and (clicks) the target URL. Written in batches by the web crate's event
//! writer, read back per send for campaign results.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use crate::rows::{DbRow, OwnedVal};
use crate::{Result, Store, StoreError};

/// What happened to a sent email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Open,
    Click,
    Unsubscribe,
    View,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Click => "click",
            Self::Unsubscribe => "unsubscribe",
            Self::View => "view",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "click" => Self::Click,
            "unsubscribe" => Self::Unsubscribe,
            "view" => Self::View,
            _ => return None,
        })
    }
}

/// An event to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewEvent {
    pub send_id: i64,
    pub kind: EventKind,
    /// Unix seconds (UTC).
    pub at: i64,
    /// A prefetch, privacy proxy or link scanner rather than a person.
    pub bot: bool,
    pub url: Option<String>,
    pub user_agent: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRecord {
    pub id: i64,
    pub send_id: i64,
    pub kind: EventKind,
    pub at: i64,
    pub bot: bool,
    pub url: Option<String>,
}

/// Rows per multi-row INSERT (6 columns each), written with [`Store::bulk_values`]: with `?`
/// placeholders on SQLite a 500-row statement writes ~200k events/s on the project machine; with
/// `$N` names binding costs grow quadratically (1,000 rows: ~12k events/s).
const BATCH: usize = 500;
/// The columns [`event_of`] reads, of `events e`.
const EVENT_COLS: &str = "e.id, e.send_id, e.kind, e.at, e.bot, e.url";

fn event_of(r: &dyn DbRow) -> Result<EventRecord> {
    let kind = r.text(2)?;
    Ok(EventRecord {
        id: r.int(0)?,
        send_id: r.int(1)?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event kind '{kind}'")))?,
        at: r.int(3)?,
        bot: r.int(4)? != 0,
        url: r.opt_text(5)?,
    })
}

/// Ids per `IN (…)` list.
const IN_CHUNK: usize = 900;
/// Longest user agent kept.
const MAX_UA: usize = 256;

fn clip(s: &Option<String>, max: usize) -> Option<String> {
    s.as_ref().map(|s| {
        if s.len() <= max {
            s.clone()
        } else {
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        }
    })
}

impl Store {
    /// Records events in one transaction (all or none). Returns how many were written.
    pub async fn record_events(&self, events: &[NewEvent]) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool().begin().await?;
        let mut written = 0;
        for chunk in events.chunks(BATCH) {
            let sql = format!(
                "INSERT INTO events (send_id, kind, at, bot, url, user_agent) VALUES {}",
                self.bulk_values(chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for e in chunk {
                q = q
                    .bind(e.send_id)
                    .bind(e.kind.as_str())
                    .bind(e.at)
                    .bind(i64::from(e.bot))
                    .bind(clip(&e.url, 2048))
                    .bind(clip(&e.user_agent, MAX_UA));
            }
            written += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(written)
    }

    /// Every event of the given sends, oldest first.
    pub async fn events_of_sends(&self, send_ids: &[i64]) -> Result<Vec<EventRecord>> {
        let mut out = Vec::new();
        for chunk in send_ids.chunks(IN_CHUNK) {
            let sql = format!(
                "SELECT {EVENT_COLS} FROM events e WHERE e.send_id IN ({})",
                crate::in_list(1, chunk.len())
            );
            let binds = chunk.iter().map(|id| OwnedVal::Int(Some(*id))).collect();
            out.extend(self.read_rows(sql, binds, event_of).await?);
        }
        out.sort_by_key(|e| (e.at, e.id));
        Ok(out)
    }

    /// The events of every send of ledger campaign `campaign_id` (a campaign or one of its
    /// steps), by time: joined to the sends in the database, so a campaign of a million
    /// recipients costs one query, not a list of a million ids.
    pub async fn events_of_campaign(&self, campaign_id: &str) -> Result<Vec<EventRecord>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM sends s JOIN events e ON e.send_id = s.id \
             WHERE s.campaign_id = $1 ORDER BY e.at, e.id"
        );
        let binds = vec![OwnedVal::Text(Some(campaign_id.to_string()))];
        self.read_rows(sql, binds, event_of).await
    }

    /// The id of the newest recorded event (0 without any): a cheap marker that events arrived.
    pub async fn latest_event_id(&self) -> Result<i64> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM events")
            .fetch_one(self.pool())
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// Number of recorded events of each kind (bots included).
    pub async fn event_counts(&self) -> Result<BTreeMap<EventKind, i64>> {
        let rows = sqlx::query("SELECT kind, COUNT(*) FROM events GROUP BY kind")
            .fetch_all(self.pool())
            .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let kind: String = r.try_get(0)?;
            let kind = EventKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("event kind '{kind}'")))?;
            out.insert(kind, r.try_get::<i64, _>(1)?);
        }
        Ok(out)
    }

    /// Total number of recorded events.
    pub async fn event_total(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(self.pool())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support;

    fn ev(send_id: i64, kind: EventKind, at: i64) -> NewEvent {
        NewEvent {
            send_id,
            kind,
            at,
            bot: kind == EventKind::View,
            url: (kind == EventKind::Click).then(|| "https://shop.example/x".to_string()),
            user_agent: Some("é".repeat(300)),
        }
    }

    async fn round_trip(store: Store) {
        let mut events = Vec::new();
        for i in 0..2500 {
            let kind = [
                EventKind::Open,
                EventKind::Click,
                EventKind::View,
                EventKind::Unsubscribe,
            ][i % 4];
            events.push(ev((i % 50) as i64, kind, 1_000 + i as i64));
        }
        assert_eq!(store.record_events(&events).await.expect("write"), 2500);
        assert_eq!(store.record_events(&[]).await.expect("nothing"), 0);
        assert_eq!(store.event_total().await.expect("total"), 2500);
        let counts = store.event_counts().await.expect("counts");
        assert_eq!(counts.get(&EventKind::Open), Some(&625));
        let ids: Vec<i64> = (0..1000).collect();
        let back = store.events_of_sends(&ids).await.expect("read");
        assert_eq!(back.len(), 2500);
        let of_3 = store.events_of_sends(&[3]).await.expect("read one");
        assert_eq!(of_3.len(), 50);
        assert!(of_3.iter().all(|e| e.send_id == 3));
        assert!(of_3.windows(2).all(|w| w[0].at <= w[1].at));
        let click = back
            .iter()
            .find(|e| e.kind == EventKind::Click)
            .expect("a click");
        assert_eq!(click.url.as_deref(), Some("https://shop.example/x"));
        assert!(back
            .iter()
            .filter(|e| e.bot)
            .all(|e| e.kind == EventKind::View));
    }

    #[tokio::test]
    async fn events_round_trip_sqlite() {
        let (store, _dir) = test_support::sqlite().await;
        round_trip(store).await;
    }

    #[tokio::test]
    async fn events_round_trip_postgres() {
        if let Some((store, _db)) = test_support::postgres().await {
            round_trip(store).await;
        }
    }
}
