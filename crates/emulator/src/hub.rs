//! Where mutations become events: every change to the tenant is rendered, right after it
//! happened, into the events each installed app would receive, recorded, and handed to the
//! pusher for the apps that have a request URL.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::events::{OutgoingEvent, render_events};
use crate::long_connection::LongConnections;
use crate::mutate::Change;
use crate::pusher::{PushConfig, PushEvent, PushTarget, Pusher};
use crate::tenant::{AppRecord, EventMode, Tenant};

/// How many emitted events the hub remembers for inspection.
pub const EMITTED_LOG_CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct EventHub {
    /// Started on first use: the pusher needs a tokio runtime.
    pusher: OnceLock<Pusher>,
    initial_push_config: PushConfig,
    long_connections: Arc<LongConnections>,
    emitted: Mutex<VecDeque<OutgoingEvent>>,
    emitted_total: Mutex<u64>,
    rng: Mutex<ChaCha8Rng>,
    /// The last `create_time` given: each change gets a later one, as two changes of one
    /// object never share a millisecond on Feishu.
    last_ms: Mutex<i64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl EventHub {
    pub fn new(push: PushConfig, seed: u64, long_connections: Arc<LongConnections>) -> Self {
        Self {
            pusher: OnceLock::new(),
            initial_push_config: push,
            long_connections,
            emitted: Mutex::new(VecDeque::new()),
            emitted_total: Mutex::new(0),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x6576_656e_7473)),
            last_ms: Mutex::new(0),
        }
    }

    /// The pusher (started on first call; must be called inside a tokio runtime).
    pub fn pusher(&self) -> &Pusher {
        self.pusher.get_or_init(|| {
            Pusher::start_with(
                self.initial_push_config.clone(),
                Some(self.long_connections.clone()),
            )
        })
    }

    /// Renders the events `changes` cause for every app, records them and pushes those of
    /// apps with a request URL. `tenant` must be the state right after the changes.
    pub fn publish(&self, tenant: &Tenant, changes: &[Change], now_ms: i64) -> Vec<OutgoingEvent> {
        let now_ms = {
            let mut last = lock(&self.last_ms);
            *last = now_ms.max(*last + 1);
            *last
        };
        let mut all = Vec::new();
        for app in tenant.apps.values() {
            let mut events = Vec::new();
            for change in changes {
                events.extend(render_events(tenant, app, change, now_ms, &mut || {
                    self.next_event_id()
                }));
            }
            if events.is_empty() {
                continue;
            }
            if let Some(target) = push_target(app) {
                self.pusher().push(
                    &target,
                    events.iter().map(|e| PushEvent {
                        event_id: e.event_id.clone(),
                        plaintext: e.plaintext.clone(),
                    }),
                );
            }
            all.extend(events);
        }
        let mut log = lock(&self.emitted);
        for e in &all {
            if log.len() == EMITTED_LOG_CAPACITY {
                log.pop_front();
            }
            log.push_back(e.clone());
        }
        *lock(&self.emitted_total) += all.len() as u64;
        all
    }

    /// A fresh 32-hex event id (seeded, so a seeded run is reproducible).
    pub fn next_event_id(&self) -> String {
        let bytes: [u8; 16] = lock(&self.rng).random();
        hex::encode(bytes)
    }

    /// The most recent emitted events (all apps), oldest first.
    pub fn emitted(&self) -> Vec<OutgoingEvent> {
        lock(&self.emitted).iter().cloned().collect()
    }

    pub fn emitted_total(&self) -> u64 {
        *lock(&self.emitted_total)
    }
}

/// Where an app's events go: its long connections in that mode, else its request URL if it
/// has one.
pub fn push_target(app: &AppRecord) -> Option<PushTarget> {
    let long_connection = app.event_mode == EventMode::LongConnection;
    let url = if long_connection {
        String::new()
    } else {
        app.request_url.clone().filter(|u| !u.is_empty())?
    };
    Some(PushTarget {
        app_id: app.app_id.clone(),
        long_connection,
        url,
        encrypt_key: app.encrypt_key.clone().filter(|k| !k.is_empty()),
        verification_token: app.verification_token.clone(),
    })
}
