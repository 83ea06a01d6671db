//! Service credentials as admins manage them and as requests present them
//! (docs/service-credentials.md).

use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, AdminResult};
use crate::credentials::{self, Scope, ServiceCredential};
use crate::ids::{Millis, PoolId, now_ms};
use crate::store::StoredCredential;

/// `last_used_at` is written at most this often per credential and process.
const TOUCH_EVERY_MS: Millis = 60_000;
/// The longest a credential may be made to last, in days.
pub const EXPIRY_MAX_DAYS: u32 = 3_650;

/// What an admin enters to create a credential.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// Who uses it, e.g. `hr-sync`: 1–64 characters, unique among the pool's live
    /// credentials.
    pub name: String,
    /// `directory:read`, `events:read`, `webhooks:admin`.
    pub scopes: Vec<String>,
    /// Days until it stops working; absent: it does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new credential with its token: the only time the token is shown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedCredential {
    pub credential: ServiceCredential,
    /// `Authorization: Bearer <token>`. Shown once; only a keyed hash of it is kept.
    pub token: String,
}

/// Why a presented service token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Unknown, wrong, revoked or expired (401).
    #[error("{0}")]
    Invalid(&'static str),
    /// The store could not be asked (503): not the caller's fault.
    #[error("the service credential could not be checked: the database does not answer")]
    Unavailable,
}

fn parse_scopes(names: &[String]) -> AdminResult<Vec<Scope>> {
    if names.is_empty() {
        return Err(AdminError::Invalid(format!(
            "scopes: name at least one of {}",
            scope_list()
        )));
    }
    let mut scopes = names
        .iter()
        .map(|n| {
            Scope::parse(n.trim()).ok_or_else(|| {
                AdminError::Invalid(format!(
                    "scopes: {n:?} is not a scope; use {}",
                    scope_list()
                ))
            })
        })
        .collect::<AdminResult<Vec<_>>>()?;
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

fn scope_list() -> String {
    Scope::ALL
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Admin {
    pub async fn create_credential(
        &self,
        pool_id: &PoolId,
        input: NewCredential,
    ) -> AdminResult<CreatedCredential> {
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(AdminError::Invalid(
                "name: 1 to 64 characters, no control characters".into(),
            ));
        }
        let scopes = parse_scopes(&input.scopes)?;
        let now = now_ms();
        let expires_at = match input.expires_in_days {
            None => None,
            Some(d) if (1..=EXPIRY_MAX_DAYS).contains(&d) => Some(now + i64::from(d) * 86_400_000),
            Some(d) => {
                return Err(AdminError::Invalid(format!(
                    "expires_in_days must be 1 to {EXPIRY_MAX_DAYS}, got {d}"
                )));
            }
        };
        let (id, token, secret_hash) = credentials::generate(self.engine.master_key());
        let credential = ServiceCredential {
            id,
            pool_id: pool_id.clone(),
            name,
            scopes,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.store()
            .create_credential(&StoredCredential {
                credential: credential.clone(),
                secret_hash,
            })
            .await?;
        tracing::info!(pool = %pool_id, credential = %credential.id, name = %credential.name, "service credential created");
        Ok(CreatedCredential { credential, token })
    }

    /// The pool's credentials, revoked ones too, oldest first.
    pub async fn list_credentials(&self, pool_id: &PoolId) -> AdminResult<Vec<ServiceCredential>> {
        self.pool(pool_id).await?;
        Ok(self.store().list_credentials(pool_id).await?)
    }

    /// Revokes at once: the next request with it gets 401.
    pub async fn revoke_credential(
        &self,
        pool_id: &PoolId,
        id: &str,
    ) -> AdminResult<ServiceCredential> {
        let found = self
            .store()
            .get_credential(id)
            .await?
            .filter(|c| &c.credential.pool_id == pool_id)
            .ok_or_else(|| AdminError::NotFound(format!("service credential {id}")))?;
        if found.credential.revoked_at.is_some() {
            return Ok(found.credential);
        }
        let now = now_ms();
        self.store().revoke_credential(id, now).await?;
        tracing::info!(pool = %pool_id, credential = %id, "service credential revoked");
        let mut credential = found.credential;
        credential.revoked_at = Some(now);
        Ok(credential)
    }

    /// The credential a bearer token names, if the token is one (`None`: not shaped like a
    /// service token at all), or why it is refused.
    pub async fn authenticate_service(
        &self,
        token: &str,
    ) -> Option<Result<ServiceCredential, Refused>> {
        let (id, secret) = credentials::parse_token(token)?;
        let found = match self.store().get_credential(id).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "could not read a service credential");
                return Some(Err(Refused::Unavailable));
            }
        };
        let Some(stored) = found else {
            return Some(Err(Refused::Invalid("the service credential is not valid")));
        };
        if !credentials::secret_matches(self.engine.master_key(), secret, &stored.secret_hash) {
            return Some(Err(Refused::Invalid("the service credential is not valid")));
        }
        let now = now_ms();
        if let Some(why) = stored.credential.unusable(now) {
            return Some(Err(Refused::Invalid(why)));
        }
        self.note_use(&stored.credential.id, now);
        Some(Ok(stored.credential))
    }

    /// Records `last_used_at`, at most once a minute per credential, off the request path.
    fn note_use(&self, id: &str, now: Millis) {
        {
            let mut uses = self
                .credential_uses
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if uses.get(id).is_some_and(|at| now - at < TOUCH_EVERY_MS) {
                return;
            }
            uses.insert(id.to_owned(), now);
        }
        let store = self.store().clone();
        let id = id.to_owned();
        tokio::spawn(async move {
            if let Err(e) = store.touch_credential(&id, now).await {
                tracing::warn!(credential = %id, error = %e, "could not record a service credential's use");
            }
        });
    }
}
