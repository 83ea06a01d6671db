//! The pool's LDAP view in the console: its settings (base DN, where `uid` comes from, how
//! departments count members, POSIX attributes) with the bind DNs they give, and the app passwords on a user's
//! page (docs/ldap.md, "Pool settings" and "App passwords").

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use directory::admin::{APP_PASSWORD_MAX_DAYS, NewAppPassword};
use directory::app_passwords::MAX_LIVE_PER_USER;
use directory::credentials::Scope;
use directory::ids::{PoolId, UserId};
use directory::ldap_view::{DepartmentScope, LdapSettings, LoginSource, POSIX_ID_BASE};
use serde::Deserialize;

use super::directory_pages::user_page;
use super::pages::DoneQuery;
use super::session::{CsrfForm, NoFields, Session};
use super::util::{ConsoleError, ConsoleResult, Ctx, fmt_ms, ok, render};
use crate::AppState;

/// One radio button of a setting.
pub struct Choice {
    pub value: &'static str,
    pub label: &'static str,
    pub checked: bool,
}

/// A live service credential that may bind, with the DN it binds as.
pub struct ServiceBind {
    pub name: String,
    pub dn: String,
}

#[derive(Template)]
#[template(path = "ldap.html")]
pub struct LdapPage {
    pub ctx: Ctx,
    pub pool: String,
    pub pool_name: String,
    /// The base DN in effect (saved settings, not the form).
    pub base: String,
    pub base_is_default: bool,
    /// `o=<pool id>,dc=orgsync`.
    pub default_base: String,
    pub service_example: String,
    pub person_example: String,
    pub services: Vec<ServiceBind>,
    /// The form: saved values, or what was entered after a refusal.
    pub base_dn: String,
    pub logins: Vec<Choice>,
    pub scopes: Vec<Choice>,
    /// Whether people, groups and departments carry POSIX attributes.
    pub posix: bool,
    /// The first POSIX number, as saved or as entered.
    pub posix_id_base: String,
    /// [`POSIX_ID_BASE`], for the hint.
    pub default_posix_id_base: u32,
    pub error: Option<ConsoleError>,
}

fn scope_label(scope: DepartmentScope) -> &'static str {
    match scope {
        DepartmentScope::Subtree => {
            "a department's members include the users of every department below it"
        }
        DepartmentScope::Direct => "a department's members are only the users placed in it",
    }
}

fn login_choices(selected: &str) -> Vec<Choice> {
    LoginSource::ALL
        .into_iter()
        .map(|l| Choice {
            value: l.as_str(),
            label: l.describe(),
            checked: l.as_str() == selected,
        })
        .collect()
}

fn scope_choices(selected: &str) -> Vec<Choice> {
    [DepartmentScope::Subtree, DepartmentScope::Direct]
        .into_iter()
        .map(|s| Choice {
            value: s.as_str(),
            label: scope_label(s),
            checked: s.as_str() == selected,
        })
        .collect()
}

async fn page(
    state: &AppState,
    session: &Session,
    pool: &PoolId,
    done: Option<&str>,
) -> ConsoleResult<LdapPage> {
    let p = state.admin.pool(pool).await?;
    let settings = state.admin.ldap_settings(pool).await?;
    let base = settings.base(&p.id);
    let default_base = directory::ldap_view::default_base(&p.id);
    let now = directory::ids::now_ms();
    let services = state
        .admin
        .list_credentials(pool)
        .await?
        .into_iter()
        .filter(|c| c.unusable(now).is_none() && c.scopes.contains(&Scope::LdapSearch))
        .map(|c| ServiceBind {
            dn: base
                .child("ou", "services")
                .child("cn", &c.name)
                .to_string(),
            name: c.name,
        })
        .collect();
    Ok(LdapPage {
        ctx: Ctx::new(session, "pools").pool(&p).notice(done),
        pool: p.id.to_string(),
        pool_name: p.name.clone(),
        base_is_default: base.normalized() == default_base.normalized(),
        service_example: format!("cn=<credential name>,ou=services,{base}"),
        person_example: format!("uid=<login>,ou=people,{base}"),
        base: base.to_string(),
        default_base: default_base.to_string(),
        services,
        base_dn: settings.base_dn.unwrap_or_default(),
        logins: login_choices(settings.login.as_str()),
        scopes: scope_choices(settings.department_members.as_str()),
        posix: settings.posix,
        posix_id_base: settings.posix_id_base.to_string(),
        default_posix_id_base: POSIX_ID_BASE,
        error: None,
    })
}

pub async fn ldap(
    State(state): State<AppState>,
    session: Session,
    Path(pool): Path<String>,
    Query(q): Query<DoneQuery>,
) -> ConsoleResult {
    Ok(ok(&page(
        &state,
        &session,
        &PoolId::from(pool),
        q.done.as_deref(),
    )
    .await?))
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    base_dn: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    department_members: String,
    /// A checkbox: absent when unchecked.
    #[serde(default)]
    posix: Option<String>,
    /// Empty: [`POSIX_ID_BASE`].
    #[serde(default)]
    posix_id_base: String,
}

fn parse_settings(form: &SettingsForm) -> Result<LdapSettings, ConsoleError> {
    let login = LoginSource::parse(&form.login).ok_or_else(|| {
        ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "login: choose where uid comes from ({}), got {:?}",
                LoginSource::ALL.map(LoginSource::as_str).join(", "),
                form.login
            ),
        )
        .with_fix("Pick one of the login choices and save again.")
    })?;
    let department_members = DepartmentScope::parse(&form.department_members).ok_or_else(|| {
        ConsoleError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "department members: choose subtree or direct, got {:?}",
                form.department_members
            ),
        )
        .with_fix("Pick one of the department member choices and save again.")
    })?;
    let raw_base = form.posix_id_base.trim();
    let posix_id_base = if raw_base.is_empty() {
        POSIX_ID_BASE
    } else {
        raw_base.parse::<u32>().map_err(|_| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "posix_id_base: the first POSIX number must be a whole number from 1000 to 1000000000, got {raw_base:?}"
                ),
            )
            .with_fix(format!("Leave it empty for the default, {POSIX_ID_BASE}."))
        })?
    };
    let base_dn = form.base_dn.trim();
    // The range of the base is checked where every writer's settings are
    // (`LdapSettings::validated`).
    Ok(LdapSettings {
        base_dn: (!base_dn.is_empty()).then(|| base_dn.to_owned()),
        login,
        department_members,
        posix: form.posix.is_some(),
        posix_id_base,
    })
}

pub async fn save_settings(
    State(state): State<AppState>,
    Path(pool): Path<String>,
    CsrfForm(session, form): CsrfForm<SettingsForm>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    let result = match parse_settings(&form) {
        Ok(settings) => state
            .admin
            .set_ldap_settings(&pool, settings)
            .await
            .map_err(ConsoleError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(Redirect::to(&format!(
            "/console/pools/{pool}/ldap?done=ldap_settings_saved"
        ))
        .into_response()),
        Err(e) => {
            let e = e.with_csrf(&session.csrf);
            let mut p = page(&state, &session, &pool, None).await?;
            p.base_dn = form.base_dn;
            p.logins = login_choices(&form.login);
            p.scopes = scope_choices(&form.department_members);
            p.posix = form.posix.is_some();
            p.posix_id_base = form.posix_id_base;
            let status = e.status;
            p.error = Some(e);
            Ok(render(status, &p))
        }
    }
}

// ---- app passwords, on the user's page ----

pub struct AppPasswordRow {
    pub id: String,
    pub label: String,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    /// `live`, `expired` or `revoked`.
    pub state: &'static str,
}

/// The user page's "App passwords" section.
pub struct AppPasswords {
    /// Newest first.
    pub rows: Vec<AppPasswordRow>,
    /// The pool's base DN in effect.
    pub base: String,
    /// Where this pool's `uid` comes from, in words.
    pub login: &'static str,
    /// The form as entered (after a refusal).
    pub label: String,
    pub expires_in_days: String,
    /// `(label, password)` of one just issued: shown this once.
    pub created: Option<(String, String)>,
    pub max_live: usize,
    pub max_days: u32,
}

/// A user's app passwords and what the section needs to explain them.
pub async fn app_passwords(
    state: &AppState,
    pool: &PoolId,
    user: &UserId,
) -> ConsoleResult<AppPasswords> {
    let settings = state.admin.ldap_settings(pool).await?;
    let now = directory::ids::now_ms();
    let rows = state
        .admin
        .list_app_passwords(pool, user)
        .await?
        .into_iter()
        .rev()
        .map(|a| AppPasswordRow {
            state: if a.revoked_at.is_some() {
                "revoked"
            } else if a.live(now) {
                "live"
            } else {
                "expired"
            },
            created: fmt_ms(a.created_at),
            expires: a.expires_at.map_or_else(|| "never".into(), fmt_ms),
            last_used: a.last_used_at.map_or_else(|| "never".into(), fmt_ms),
            id: a.id,
            label: a.label,
        })
        .collect();
    Ok(AppPasswords {
        rows,
        base: settings.base(pool).to_string(),
        login: settings.login.describe(),
        label: String::new(),
        expires_in_days: String::new(),
        created: None,
        max_live: MAX_LIVE_PER_USER,
        max_days: APP_PASSWORD_MAX_DAYS,
    })
}

#[derive(Deserialize)]
pub struct AppPasswordForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Issues an app password and shows it on the user's page this once (never in a redirect's
/// URL, and the page is not cached).
pub async fn create_app_password(
    State(state): State<AppState>,
    Path((pool, user)): Path<(String, String)>,
    CsrfForm(session, form): CsrfForm<AppPasswordForm>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    let user = UserId::from(user);
    let days = form.expires_in_days.trim();
    let expires_in_days = if days.is_empty() {
        Ok(None)
    } else {
        days.parse::<u32>().map(Some).map_err(|_| {
            ConsoleError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "expires in days must be a whole number from 1 to {APP_PASSWORD_MAX_DAYS}, got {days:?}"
                ),
            )
            .with_fix("Leave it empty for a password that does not expire.")
        })
    };
    let created = match expires_in_days {
        Ok(expires_in_days) => state
            .admin
            .create_app_password(
                &pool,
                &user,
                NewAppPassword {
                    label: form.label.clone(),
                    expires_in_days,
                },
            )
            .await
            .map_err(ConsoleError::from),
        Err(e) => Err(e),
    };
    let mut p = user_page(&state, &session, &pool, &user, None).await?;
    match created {
        Ok(c) => {
            p.app.created = Some((c.app_password.label, c.password));
            Ok(ok(&p))
        }
        Err(e) => {
            let e = e.with_csrf(&session.csrf);
            p.app.label = form.label;
            p.app.expires_in_days = form.expires_in_days;
            let status = e.status;
            p.error = Some(e);
            Ok(render(status, &p))
        }
    }
}

pub async fn revoke_app_password(
    State(state): State<AppState>,
    Path((pool, user, id)): Path<(String, String, String)>,
    CsrfForm(_session, _): CsrfForm<NoFields>,
) -> ConsoleResult {
    let pool = PoolId::from(pool);
    let user = UserId::from(user);
    // Only one of this user's: the page the admin returns to must be the one it was on.
    let theirs = state
        .admin
        .list_app_passwords(&pool, &user)
        .await?
        .iter()
        .any(|a| a.id == id);
    if !theirs {
        return Err(ConsoleError::not_found(&format!(
            "app password {id} of user {user}"
        )));
    }
    state.admin.revoke_app_password(&pool, &id).await?;
    Ok(Redirect::to(&format!(
        "/console/pools/{pool}/users/{user}?done=app_password_revoked"
    ))
    .into_response())
}
