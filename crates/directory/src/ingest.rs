//! Event ingestion: what the HTTP event endpoint calls with (pool id, identifier, headers, raw
//! body). It answers the URL check, verifies and decrypts with the connection's secrets,
//! commits the event to the inbox (deduplicated by event id), and only then returns the
//! response to send. Nothing is stored for a rejected request.
//!
//! Commits go through one writer task that takes whatever requests are queued (up to a few
//! hundred), commits them in one transaction, then answers each: group commit with no fixed
//! wait (docs/write-path.md, "Ingest": the database commit is what to design around).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use feishu::envelope::{self, DecodeOptions, Envelope, EnvelopeError, EventSecrets, Verified};
use http::{HeaderMap, StatusCode};
use tokio::sync::{mpsc, oneshot};

use crate::ids::{ConnectionId, PoolId, now_ms};
use crate::model::Connection;
use crate::secrets::{MasterKey, SecretError};
use crate::store::{DirectoryStore, InsertOutcome, NewInboxEvent, StoreError};

/// The most events one group commit takes.
pub const MAX_GROUP: usize = 512;

/// What to answer Feishu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestResponse {
    pub status: StatusCode,
    /// A JSON body.
    pub body: String,
    pub outcome: IngestOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    /// The URL check was answered; nothing stored.
    Challenge,
    /// Committed to the inbox (row id).
    Accepted { inbox_id: i64, event_type: String },
    /// Already in the inbox: acknowledged again, stored once.
    Duplicate { inbox_id: i64 },
}

/// A rejected request: nothing was stored. `status()` is what to answer.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("no user pool {0}")]
    UnknownPool(String),
    #[error(
        "no connection {identifier:?} in user pool {pool}: check the request URL in the Feishu console"
    )]
    UnknownConnection { pool: String, identifier: String },
    #[error(
        "connection {0:?} has no Verification Token: set the Verification Token from the Feishu console (Events & Callbacks → Encryption Strategy) on the connection"
    )]
    EventsNotConfigured(String),
    #[error("{0}")]
    Rejected(#[from] EnvelopeError),
    #[error("the connection's secrets cannot be opened: {0}")]
    Secrets(#[from] SecretError),
    #[error("the event could not be stored: {0}")]
    Store(#[from] StoreError),
    #[error("the event writer has stopped")]
    WriterGone,
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnknownPool(_) | Self::UnknownConnection { .. } => StatusCode::NOT_FOUND,
            Self::EventsNotConfigured(_) => StatusCode::UNAUTHORIZED,
            Self::Rejected(e) => e.status(),
            Self::Secrets(_) | Self::Store(_) | Self::WriterGone => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// A stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownPool(_) => "unknown_pool",
            Self::UnknownConnection { .. } => "unknown_connection",
            Self::EventsNotConfigured(_) => "events_not_configured",
            Self::Rejected(e) => e.reason(),
            Self::Secrets(_) => "secrets",
            Self::Store(_) => "store",
            Self::WriterGone => "writer_gone",
        }
    }

    /// The JSON error body.
    pub fn body(&self) -> String {
        serde_json::json!({ "error": self.reason(), "message": self.to_string() }).to_string()
    }
}

type Reply = oneshot::Sender<Result<InsertOutcome, String>>;

/// Handle to the group-commit writer task.
#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<(NewInboxEvent, Reply)>,
    committed: Arc<tokio::sync::Notify>,
}

impl InboxWriter {
    /// Starts the writer on the current runtime.
    pub fn start(store: Arc<dyn DirectoryStore>) -> Self {
        let (tx, rx) = mpsc::channel(MAX_GROUP * 8);
        let committed = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(write_loop(store, rx, committed.clone()));
        Self { tx, committed }
    }

    /// Notified after every commit of new events: the event worker waits on it instead of
    /// polling, so a leaver is applied right after Feishu's push is answered.
    pub fn committed(&self) -> Arc<tokio::sync::Notify> {
        self.committed.clone()
    }

    /// Commits one event (together with whatever else is queued) and waits for the commit.
    pub async fn commit(&self, event: NewInboxEvent) -> Result<InsertOutcome, IngestError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event, reply))
            .await
            .map_err(|_| IngestError::WriterGone)?;
        match answer.await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(message)) => Err(IngestError::Store(StoreError::Database(message))),
            Err(_) => Err(IngestError::WriterGone),
        }
    }
}

async fn write_loop(
    store: Arc<dyn DirectoryStore>,
    mut rx: mpsc::Receiver<(NewInboxEvent, Reply)>,
    committed: Arc<tokio::sync::Notify>,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(item) => group.push(item),
                Err(_) => break,
            }
        }
        let (events, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        match store.inbox_insert(&events).await {
            Ok(outcomes) if outcomes.len() == replies.len() => {
                if outcomes
                    .iter()
                    .any(|o| matches!(o, InsertOutcome::Inserted(_)))
                {
                    committed.notify_one();
                }
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                let message = format!(
                    "the store answered {} outcomes for {} events",
                    outcomes.len(),
                    replies.len()
                );
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
            Err(e) => {
                // Nothing of the group was committed: every request gets a 500 and Feishu
                // re-pushes it.
                let message = e.to_string();
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

/// How long a looked-up connection is reused before it is read again (edits in the console
/// take effect within this time).
const CONNECTION_CACHE_TTL: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct CachedConnection {
    id: ConnectionId,
    secrets: Option<EventSecrets>,
    fetched: Instant,
}

/// The ingestion entry point.
#[derive(Clone)]
pub struct Ingestor {
    store: Arc<dyn DirectoryStore>,
    master_key: MasterKey,
    writer: InboxWriter,
    options: DecodeOptions,
    cache: Arc<Mutex<HashMap<(String, String), CachedConnection>>>,
}

impl Ingestor {
    pub fn new(
        store: Arc<dyn DirectoryStore>,
        master_key: MasterKey,
        options: DecodeOptions,
    ) -> Self {
        let writer = InboxWriter::start(store.clone());
        Self {
            store,
            master_key,
            writer,
            options,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Notified after new events are committed (see [`InboxWriter::committed`]).
    pub fn committed(&self) -> Arc<tokio::sync::Notify> {
        self.writer.committed()
    }

    /// Forgets cached connection secrets (after an admin edits a connection).
    pub fn invalidate(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    async fn connection(
        &self,
        pool_id: &str,
        identifier: &str,
    ) -> Result<CachedConnection, IngestError> {
        let key = (pool_id.to_owned(), identifier.to_owned());
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|c| c.fetched.elapsed() < CONNECTION_CACHE_TTL)
            .cloned()
        {
            return Ok(hit);
        }
        let pool = PoolId::from(pool_id);
        let Some(connection) = self.store.find_connection(&pool, identifier).await? else {
            return Err(if self.store.get_pool(&pool).await?.is_none() {
                IngestError::UnknownPool(pool_id.to_owned())
            } else {
                IngestError::UnknownConnection {
                    pool: pool_id.to_owned(),
                    identifier: identifier.to_owned(),
                }
            });
        };
        let entry = CachedConnection {
            id: connection.id.clone(),
            secrets: self.event_secrets(&connection)?,
            fetched: Instant::now(),
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, entry.clone());
        Ok(entry)
    }

    fn event_secrets(&self, connection: &Connection) -> Result<Option<EventSecrets>, SecretError> {
        let Some(token) = &connection.verification_token else {
            return Ok(None);
        };
        let token = self.master_key.open(token)?;
        let key = connection
            .encrypt_key
            .as_ref()
            .map(|k| self.master_key.open(k))
            .transpose()?;
        Ok(Some(EventSecrets::new(token, key)))
    }

    /// Handles one event request. `Ok` carries the response to send; `Err` a rejection (with
    /// its status) for which nothing was stored.
    pub async fn ingest(
        &self,
        pool_id: &str,
        identifier: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<IngestResponse, IngestError> {
        let connection = self.connection(pool_id, identifier).await?;
        let secrets = connection
            .secrets
            .ok_or_else(|| IngestError::EventsNotConfigured(identifier.to_owned()))?;
        // Verified and read only as far as the inbox needs: the worker types the event.
        let event = match envelope::verify_request(headers, body, &secrets, &self.options)? {
            Verified::UrlVerification { challenge } => {
                return Ok(IngestResponse {
                    status: StatusCode::OK,
                    body: Envelope::challenge_response(&challenge),
                    outcome: IngestOutcome::Challenge,
                });
            }
            Verified::Event(event) => event,
        };
        // The Verification Token is checked by now and is a secret: it is not stored (the
        // worker re-reads the payload without it).
        let event_type = event.event_type;
        let outcome = self
            .writer
            .commit(NewInboxEvent {
                pool_id: PoolId::from(pool_id),
                connection_id: connection.id,
                event_id: event.event_id,
                event_type: event_type.clone(),
                created_at: event.created_at_ms,
                received_at: now_ms(),
                payload: event.without_token,
            })
            .await?;
        let ack = r#"{"msg":"success"}"#.to_owned();
        Ok(IngestResponse {
            status: StatusCode::OK,
            body: ack,
            outcome: match outcome {
                InsertOutcome::Inserted(id) => IngestOutcome::Accepted {
                    inbox_id: id,
                    event_type,
                },
                InsertOutcome::Duplicate(id) => IngestOutcome::Duplicate { inbox_id: id },
            },
        })
    }
}
