//! Scheduled reconciliation: every connection is pulled again after its
//! `reconcile_interval_secs` (default 6 h), to heal whatever Feishu did not deliver (Feishu
//! gives up on an event after ~7 h of failed pushes). The same tick ends jobs orphaned by a
//! stopped instance, and removes change-feed events past their pool's retention.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Engine, EngineError};
use crate::ids::{ConnectionId, Millis, now_ms};
use crate::model::{JobKind, JobState, JobTrigger};
use crate::store::{PageRequest, StoreError};

/// When a connection is due: `None` when it never had a job (the admin starts the first
/// import) or its schedule is off; else the time its next reconciliation is due.
pub async fn next_due(
    engine: &Engine,
    connection_id: &ConnectionId,
    interval_secs: u64,
) -> Result<Option<Millis>, StoreError> {
    if interval_secs == 0 {
        return Ok(None);
    }
    let jobs = engine
        .store()
        .list_jobs(
            Some(connection_id),
            PageRequest {
                offset: 0,
                limit: 1,
                after: None,
            },
        )
        .await?;
    let Some(last) = jobs.first() else {
        return Ok(None);
    };
    if last.state == JobState::Running {
        return Ok(None);
    }
    let since = last.finished_at.unwrap_or(last.started_at);
    Ok(Some(since + (interval_secs as i64) * 1000))
}

/// One pass: starts a reconciliation for every connection that is due. Returns the ones
/// started.
pub async fn run_due(engine: &Arc<Engine>, now: Millis) -> Result<Vec<ConnectionId>, StoreError> {
    let mut started = Vec::new();
    for connection in engine.store().list_connections(None).await? {
        let due = next_due(
            engine,
            &connection.id,
            connection.settings.reconcile_interval_secs,
        )
        .await?;
        if due.is_some_and(|due| due <= now) {
            match engine
                .start_job(&connection.id, JobKind::Reconcile, JobTrigger::Schedule)
                .await
            {
                Ok(job) => {
                    tracing::info!(connection = %connection.identifier, %job, "scheduled reconciliation started");
                    started.push(connection.id.clone());
                }
                // Another instance (or an admin) got there first.
                Err(EngineError::Busy(_)) => {}
                Err(e) => {
                    tracing::warn!(connection = %connection.identifier, error = %e, "could not start the scheduled reconciliation")
                }
            }
        }
    }
    Ok(started)
}

/// Events removed per statement of the retention sweep: a large backlog does not hold the
/// writer long.
const PRUNE_BATCH: u64 = 5_000;
/// Webhook delivery attempts older than this are removed.
const ATTEMPTS_KEPT_DAYS: i64 = 30;

/// Removes every pool's feed events older than its retention (docs/change-feed.md);
/// returns how many.
pub async fn prune_feeds(engine: &Engine, now: Millis) -> Result<u64, StoreError> {
    let store = engine.store();
    let mut removed = 0;
    for pool in store.list_pools().await? {
        let Some(settings) = store.feed_settings(&pool.id).await? else {
            continue;
        };
        let before = now - i64::from(settings.retention_days) * 86_400_000;
        loop {
            let n = store.feed_prune(&pool.id, before, PRUNE_BATCH).await?;
            removed += n;
            if n < PRUNE_BATCH {
                break;
            }
        }
    }
    // Delivery attempts are kept as long as the default retention.
    store
        .prune_webhook_attempts(now - ATTEMPTS_KEPT_DAYS * 86_400_000)
        .await?;
    Ok(removed)
}

/// Checks every `every` until `shutdown` turns true; each tick first ends the jobs whose
/// instance stopped (their lease expired), which would otherwise look running forever and
/// hold back their connection's schedule.
pub fn spawn(
    engine: Arc<Engine>,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *shutdown.borrow() {
                break;
            }
            if let Err(e) = engine.end_orphaned_jobs().await {
                tracing::warn!(error = %e, "could not look for jobs left running by a stopped instance");
            }
            if let Err(e) = run_due(&engine, now_ms()).await {
                tracing::warn!(error = %e, "reconciliation schedule check failed");
            }
            match prune_feeds(&engine, now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    removed = n,
                    "removed change-feed events past their retention"
                ),
                Err(e) => tracing::warn!(error = %e, "could not remove old change-feed events"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
        }
    })
}
