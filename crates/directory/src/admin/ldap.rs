//! The LDAP view as admins manage it: a pool's settings and its users' app passwords
//! (docs/ldap.md, "Pool settings" and "App passwords").

use serde::{Deserialize, Serialize};

use super::{Admin, AdminError, AdminResult};
use crate::app_passwords::{self, AppPassword, MAX_LIVE_PER_USER};
use crate::ids::{PoolId, UserId, now_ms};
use crate::ldap_view::{LdapSettings, default_base};
use crate::model::UserStatus;
use crate::store::StoredAppPassword;

/// The longest an app password may be made to last, in days.
pub const APP_PASSWORD_MAX_DAYS: u32 = 3_650;

/// What an admin enters to issue an app password.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAppPassword {
    /// The application or device it is for, e.g. `gitlab`: 1–64 characters.
    pub label: String,
    /// Days until it stops working; absent: it does not expire.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new app password with the password itself: the only time it is shown.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedAppPassword {
    pub app_password: AppPassword,
    /// What the user types as the password in the application, with `uid` as the user name.
    /// Shown once; only its argon2id hash is kept.
    pub password: String,
}

impl Admin {
    /// The pool's LDAP settings (the defaults when it never saved any).
    pub async fn ldap_settings(&self, pool_id: &PoolId) -> AdminResult<LdapSettings> {
        self.pool(pool_id).await?;
        Ok(self
            .store()
            .ldap_settings(pool_id)
            .await?
            .unwrap_or_default())
    }

    /// Saves a pool's LDAP settings. Its base DN must not be, contain or lie under another
    /// pool's (a bind DN must name one pool). Connections bound before keep the settings they
    /// bound with until they bind again.
    pub async fn set_ldap_settings(
        &self,
        pool_id: &PoolId,
        settings: LdapSettings,
    ) -> AdminResult<LdapSettings> {
        let settings = settings.validated().map_err(AdminError::Invalid)?;
        self.pool(pool_id).await?;
        let base = settings.base(pool_id).normalized();
        let saved = self.store().list_ldap_settings().await?;
        for pool in self.store().list_pools().await? {
            if pool.id == *pool_id {
                continue;
            }
            let theirs = saved
                .iter()
                .find(|(id, _)| *id == pool.id)
                .map_or_else(|| default_base(&pool.id), |(id, s)| s.base(id))
                .normalized();
            if base.is_under(&theirs) || theirs.is_under(&base) {
                return Err(AdminError::Conflict(format!(
                    "base_dn: {base} overlaps the base {theirs} of user pool {:?} ({}); give each pool a base of its own",
                    pool.name, pool.id
                )));
            }
        }
        self.store().set_ldap_settings(pool_id, &settings).await?;
        tracing::info!(pool = %pool_id, base = %settings.base(pool_id), login = settings.login.as_str(), "LDAP settings saved");
        Ok(settings)
    }

    /// Issues an app password to an active user of the pool.
    pub async fn create_app_password(
        &self,
        pool_id: &PoolId,
        user_id: &UserId,
        input: NewAppPassword,
    ) -> AdminResult<CreatedAppPassword> {
        let label = app_passwords::valid_label(&input.label).map_err(AdminError::Invalid)?;
        let now = now_ms();
        let expires_at = match input.expires_in_days {
            None => None,
            Some(d) if (1..=APP_PASSWORD_MAX_DAYS).contains(&d) => {
                Some(now + i64::from(d) * 86_400_000)
            }
            Some(d) => {
                return Err(AdminError::Invalid(format!(
                    "expires_in_days must be 1 to {APP_PASSWORD_MAX_DAYS}, got {d}"
                )));
            }
        };
        self.pool(pool_id).await?;
        let user = self
            .store()
            .get_user(pool_id, user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or_else(|| AdminError::NotFound(format!("user {user_id}")))?;
        if user.status != UserStatus::Active {
            return Err(AdminError::Conflict(format!(
                "user {user_id} is {}: app passwords are only issued to active users",
                user.status.as_str()
            )));
        }
        let live = self
            .store()
            .list_app_passwords(pool_id, user_id)
            .await?
            .into_iter()
            .filter(|p| p.password.live(now))
            .count();
        if live >= MAX_LIVE_PER_USER {
            return Err(AdminError::Conflict(format!(
                "user {user_id} already has {live} live app passwords, the most allowed; revoke one first"
            )));
        }
        // argon2 takes tens of milliseconds of CPU: off the async workers.
        let (id, password, hash) = tokio::task::spawn_blocking(app_passwords::generate)
            .await
            .map_err(|e| AdminError::Invalid(format!("could not make a password: {e}")))?;
        let app_password = AppPassword {
            id,
            pool_id: pool_id.clone(),
            user_id: user_id.clone(),
            label,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.store()
            .create_app_password(&StoredAppPassword {
                password: app_password.clone(),
                hash,
            })
            .await?;
        tracing::info!(pool = %pool_id, user = %user_id, app_password = %app_password.id, label = %app_password.label, "app password issued");
        Ok(CreatedAppPassword {
            app_password,
            password,
        })
    }

    /// A user's app passwords, revoked ones too, oldest first.
    pub async fn list_app_passwords(
        &self,
        pool_id: &PoolId,
        user_id: &UserId,
    ) -> AdminResult<Vec<AppPassword>> {
        self.pool(pool_id).await?;
        Ok(self
            .store()
            .list_app_passwords(pool_id, user_id)
            .await?
            .into_iter()
            .map(|p| p.password)
            .collect())
    }

    /// Revokes at once: the next bind with it fails.
    pub async fn revoke_app_password(
        &self,
        pool_id: &PoolId,
        id: &str,
    ) -> AdminResult<AppPassword> {
        let found = self
            .store()
            .get_app_password(id)
            .await?
            .filter(|p| &p.password.pool_id == pool_id)
            .ok_or_else(|| AdminError::NotFound(format!("app password {id}")))?;
        let mut password = found.password;
        if password.revoked_at.is_some() {
            return Ok(password);
        }
        let now = now_ms();
        self.store().revoke_app_password(id, now).await?;
        tracing::info!(pool = %pool_id, app_password = %id, "app password revoked");
        password.revoked_at = Some(now);
        Ok(password)
    }
}
