//! One client connection's operations (RFC 4511), answered in order: binds, searches of the
//! Root DSE, the subschema entry and each pool's tree, Compare, WhoAmI; every write refused.
//!
//! What a connection may read depends on its bind: a service credential of a pool with the
//! `ldap:search` scope reads that pool's tree; a person bound with an app password reads its
//! own entry; anonymous connections read nothing, or only the Root DSE when configured so
//! (docs/ldap.md, "Binds").

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use directory::app_passwords;
use directory::credentials::{self, Scope};
use directory::ids::{Millis, UserId, now_ms};
use directory::secrets::MasterKey;
use directory::store::{DirectoryStore, StoreError};
use ldap3_proto::control::LdapControl;
use ldap3_proto::proto::{
    LdapBindCred, LdapBindRequest, LdapBindResponse, LdapCompareRequest, LdapExtendedRequest,
    LdapExtendedResponse, LdapFilter, LdapMsg, LdapOp, LdapPartialAttribute, LdapResult,
    LdapResultCode, LdapSearchRequest, LdapSearchResultEntry, LdapSearchScope,
};

use crate::cookie::{self, Position};
use crate::departments::Departments;
use crate::dn::Dn;
use crate::entry::Entry;
use crate::limiter::{BindLimiter, BindLimits};
use crate::schema::{
    self, ALL_OPERATIONAL_FEATURE_OID, PAGED_RESULTS_OID, STARTTLS_OID, WHOAMI_OID,
};
use crate::search::{self, Ended, Search};
use crate::tree::{Container, PoolTree, Target};

/// Who may read the Root DSE without binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Anonymous {
    /// Nothing: every search needs a bind.
    #[default]
    Off,
    /// The Root DSE and the subschema entry (what clients read to discover a server).
    RootDse,
}

/// The settings every connection shares.
#[derive(Debug, Clone)]
pub struct Settings {
    pub anonymous: Anonymous,
    /// The most entries one search returns without paging (a client's smaller limit wins).
    pub size_limit: usize,
    /// The most entries of one page (a client asking for more gets this many).
    pub max_page: usize,
    /// When failed binds lock a source address or a DN out.
    pub bind_limits: BindLimits,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            anonymous: Anonymous::Off,
            size_limit: 10_000,
            max_page: 1_000,
            bind_limits: BindLimits::default(),
        }
    }
}

/// What the connections of one listener share.
pub struct Shared {
    pub store: Arc<dyn DirectoryStore>,
    pub key: Arc<MasterKey>,
    pub settings: Settings,
    binds: BindLimiter,
    /// Departments kept between searches (`departments`).
    departments: Departments,
}

impl Shared {
    pub fn new(store: Arc<dyn DirectoryStore>, key: MasterKey, settings: Settings) -> Self {
        let binds = BindLimiter::new(settings.bind_limits);
        Self {
            store,
            key: Arc::new(key),
            settings,
            binds,
            departments: Departments::default(),
        }
    }

    /// The tree of every pool, as its saved settings shape it (pools are few).
    async fn trees(&self) -> Result<Vec<PoolTree>, StoreError> {
        let settings = self.store.list_ldap_settings().await?;
        Ok(self
            .store
            .list_pools()
            .await?
            .into_iter()
            .map(|p| {
                let saved = settings
                    .iter()
                    .find(|(id, _)| *id == p.id)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default();
                PoolTree::from_settings(p.id, &saved)
            })
            .collect())
    }
}

/// Who a connection is bound as. A bound connection keeps the tree (the pool's settings) it
/// bound with until it binds again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Anonymous,
    /// A service credential of one pool.
    Service {
        tree: Box<PoolTree>,
        dn: Dn,
        credential: String,
    },
    /// A person, with one of its app passwords.
    User {
        tree: Box<PoolTree>,
        dn: Dn,
        user: UserId,
        /// Its `uid`, as normalised.
        login: String,
        app_password: String,
    },
}

impl Bound {
    fn tree(&self) -> Option<&PoolTree> {
        match self {
            Self::Anonymous => None,
            Self::Service { tree, .. } | Self::User { tree, .. } => Some(tree),
        }
    }
}

/// What the connection does after an operation.
pub enum Next {
    Continue,
    Close,
}

/// The attributes that list a department's members.
const MEMBER_ATTRIBUTES: &[&str] = &["member", "uniqueMember", "memberUid"];

/// How long a connection relies on its last check of what it bound with, unless the store
/// has since written something that can end a bind ([`DirectoryStore::write_epoch`]): writes
/// this process makes count at once, those of another process within this time.
const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// The last check of a bind that passed.
#[derive(Debug, Clone, Copy)]
struct Checked {
    /// The store's write epoch read before the check.
    epoch: u64,
    /// When the check began.
    at: Instant,
    /// When the credential or app password expires.
    expires_at: Option<Millis>,
}

impl Checked {
    fn holds(&self, epoch: u64, now: Millis) -> bool {
        self.epoch == epoch
            && self.at.elapsed() < RECHECK_AFTER
            && self.expires_at.is_none_or(|at| at > now)
    }
}

/// One connection's state.
pub struct Session {
    shared: Arc<Shared>,
    peer: IpAddr,
    bound: Bound,
    /// Cleared with every bind.
    checked: std::sync::Mutex<Option<Checked>>,
}

fn result(code: LdapResultCode, message: impl Into<String>) -> LdapResult {
    LdapResult {
        code,
        matcheddn: String::new(),
        message: message.into(),
        referral: Vec::new(),
    }
}

fn msg(msgid: i32, op: LdapOp) -> LdapMsg {
    LdapMsg {
        msgid,
        op,
        ctrl: Vec::new(),
    }
}

impl Session {
    pub fn new(shared: Arc<Shared>, peer: IpAddr) -> Self {
        Self {
            shared,
            peer,
            bound: Bound::Anonymous,
            checked: std::sync::Mutex::new(None),
        }
    }

    pub fn bound(&self) -> &Bound {
        &self.bound
    }

    fn bind_as(&mut self, bound: Bound) {
        self.bound = bound;
        *self.checked.get_mut().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Answers one message; `send` writes each response as it is made (a search's entries
    /// go out one store page at a time).
    pub async fn handle<F, Fut>(&mut self, req: LdapMsg, mut send: F) -> Next
    where
        F: FnMut(LdapMsg) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let id = req.msgid;
        // A critical control this server does not know refuses the operation (RFC 4511
        // §4.1.11); the paged-results control is known whatever its criticality.
        let unknown_critical = req.ctrl.iter().any(|c| match c {
            LdapControl::Unknown { criticality, .. } => *criticality,
            LdapControl::SimplePagedResults { .. } => false,
            LdapControl::ManageDsaIT { .. } => false,
            _ => true,
        });
        let refuse_critical = || {
            result(
                LdapResultCode::UnavailableCriticalExtension,
                "a critical control of this request is not supported",
            )
        };
        match req.op {
            LdapOp::UnbindRequest => return Next::Close,
            LdapOp::AbandonRequest(_) => {}
            LdapOp::BindRequest(bind) => {
                let res = if unknown_critical {
                    refuse_critical()
                } else {
                    self.bind(bind).await
                };
                send(msg(
                    id,
                    LdapOp::BindResponse(LdapBindResponse {
                        res,
                        saslcreds: None,
                    }),
                ))
                .await;
            }
            LdapOp::SearchRequest(search) => {
                if unknown_critical {
                    send(msg(id, LdapOp::SearchResultDone(refuse_critical()))).await;
                } else {
                    let paged = req.ctrl.iter().find_map(|c| match c {
                        LdapControl::SimplePagedResults { size, cookie } => {
                            Some((*size, cookie.clone()))
                        }
                        _ => None,
                    });
                    self.search(id, search, paged, &mut send).await;
                }
            }
            LdapOp::CompareRequest(compare) => {
                let res = self.compare(compare).await;
                send(msg(id, LdapOp::CompareResult(res))).await;
            }
            LdapOp::ExtendedRequest(ext) => {
                let res = self.extended(&ext);
                send(msg(id, LdapOp::ExtendedResponse(res))).await;
            }
            LdapOp::AddRequest(_) => {
                send(msg(id, LdapOp::AddResponse(read_only()))).await;
            }
            LdapOp::ModifyRequest(_) => {
                send(msg(id, LdapOp::ModifyResponse(read_only()))).await;
            }
            LdapOp::DelRequest(_) => {
                send(msg(id, LdapOp::DelResponse(read_only()))).await;
            }
            LdapOp::ModifyDNRequest(_) => {
                send(msg(id, LdapOp::ModifyDNResponse(read_only()))).await;
            }
            // Responses sent to a server are a protocol violation: end the connection.
            _ => return Next::Close,
        }
        Next::Continue
    }

    /// A bind, counted against the limits when its credentials are wrong.
    async fn bind(&mut self, req: LdapBindRequest) -> LdapResult {
        // A failed bind leaves the connection anonymous (RFC 4511 §4.2.1).
        self.bind_as(Bound::Anonymous);
        let dn = Dn::parse(&req.dn)
            .map(|d| d.normalized().to_string())
            .unwrap_or_else(|_| req.dn.clone());
        let now = Instant::now();
        if !req.dn.is_empty()
            && let Some(wait) = self.shared.binds.locked(self.peer, &dn, now)
        {
            metrics::counter!("orgsync_ldap_binds_total", "result" => "locked_out").increment(1);
            return result(
                LdapResultCode::InvalidCredentials,
                format!(
                    "too many failed binds from this address or to this DN: try again in {} s",
                    wait.as_secs().max(1)
                ),
            );
        }
        let res = self.check_bind(req).await;
        let outcome = match res.code {
            LdapResultCode::Success => {
                self.shared.binds.succeeded(&dn);
                "success"
            }
            LdapResultCode::InvalidCredentials => {
                self.shared.binds.failed(self.peer, &dn, now);
                tracing::info!(peer = %self.peer, dn = %dn, why = %res.message, "LDAP bind refused");
                "invalid_credentials"
            }
            _ => "refused",
        };
        metrics::counter!("orgsync_ldap_binds_total", "result" => outcome).increment(1);
        res
    }

    async fn check_bind(&mut self, req: LdapBindRequest) -> LdapResult {
        if req.version != 3 {
            return result(
                LdapResultCode::ProtocolError,
                "only LDAP version 3 is supported",
            );
        }
        let password = match req.cred {
            LdapBindCred::Simple(pw) => pw,
            _ => {
                return result(
                    LdapResultCode::AuthMethodNotSupported,
                    "only simple binds are supported: bind with a DN and a password",
                );
            }
        };
        if req.dn.is_empty() && password.is_empty() {
            return result(LdapResultCode::Success, "");
        }
        let invalid = |why: &str| result(LdapResultCode::InvalidCredentials, why);
        let Ok(dn) = Dn::parse(&req.dn) else {
            return result(
                LdapResultCode::InvalidDNSyntax,
                "the bind DN is not a valid DN",
            );
        };
        if password.is_empty() {
            // An unauthenticated bind (RFC 4513 §5.1.2): refused, never treated as anonymous.
            return result(
                LdapResultCode::UnwillingToPerform,
                "a bind with a DN needs a password",
            );
        }
        let trees = match self.shared.trees().await {
            Ok(t) => t,
            Err(e) => return result(LdapResultCode::Unavailable, format!("store: {e}")),
        };
        let Some((tree, target)) = trees
            .iter()
            .find_map(|t| t.locate(&dn).map(|target| (t, target)))
        else {
            return invalid("no such bind DN");
        };
        let name = match target {
            Target::Entry(Container::Services, name) => name,
            Target::Entry(Container::People, login) => {
                return self.user_bind(tree.clone(), &login, &password).await;
            }
            _ => {
                return invalid(
                    "binds are accepted for service credentials (cn=<name>,ou=services,<base>) and people (uid=<login>,ou=people,<base>)",
                );
            }
        };
        let Some((id, secret)) = credentials::parse_token(&password) else {
            return invalid("the password is not a service credential's token");
        };
        let stored = match self.shared.store.get_credential(id).await {
            Ok(s) => s,
            Err(e) => return result(LdapResultCode::Unavailable, format!("store: {e}")),
        };
        let now: Millis = now_ms();
        let Some(stored) = stored.filter(|c| {
            c.credential.pool_id == tree.pool_id
                && credentials::secret_matches(&self.shared.key, secret, &c.secret_hash)
        }) else {
            return invalid("wrong token for this DN");
        };
        let c = &stored.credential;
        // `name` is the DN's value, normalised to lower case.
        if c.name.to_lowercase() != name && c.id.to_lowercase() != name {
            return invalid("the token belongs to another credential than the DN names");
        }
        if let Some(why) = c.unusable(now) {
            return invalid(why);
        }
        if !c.allows(Scope::LdapSearch) {
            return result(
                LdapResultCode::InsufficentAccessRights,
                "the service credential lacks the ldap:search scope",
            );
        }
        let _ = self.shared.store.touch_credential(&c.id, now).await;
        self.bind_as(Bound::Service {
            tree: Box::new(tree.clone()),
            dn: tree.service_dn(&c.name),
            credential: c.id.clone(),
        });
        result(LdapResultCode::Success, "")
    }

    /// A person's bind with an app password (docs/ldap.md, "App passwords"): the person must
    /// be shown (active), and the password one of its live app passwords. Every refusal is
    /// *invalidCredentials*, whatever the reason, as for a wrong password.
    async fn user_bind(&mut self, tree: PoolTree, login: &str, password: &str) -> LdapResult {
        let invalid = |why: &str| result(LdapResultCode::InvalidCredentials, why);
        let unavailable =
            |e: StoreError| result(LdapResultCode::Unavailable, format!("store: {e}"));
        let search = Search {
            store: &self.shared.store,
            departments: &self.shared.departments,
            tree: &tree,
            filter: &LdapFilter::Present("objectClass".into()),
            member_of: false,
            modified: false,
            members: false,
        };
        let Some((user, dn)) = (match search.person_by_login(login).await {
            Ok(found) => found.map(|(user, e)| (user, e.dn)),
            Err(e) => return unavailable(e),
        }) else {
            return invalid("no active person has this login");
        };
        let stored = match self
            .shared
            .store
            .list_app_passwords(&tree.pool_id, &user)
            .await
        {
            Ok(s) => s,
            Err(e) => return unavailable(e),
        };
        let now = now_ms();
        let live: Vec<(String, String)> = stored
            .into_iter()
            .filter(|p| p.password.live(now))
            .map(|p| (p.password.id, p.hash))
            .collect();
        if live.is_empty() {
            return invalid("this person has no live app password: an admin issues one");
        }
        // argon2 costs milliseconds of CPU per password: off the async workers.
        let presented = password.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            live.into_iter()
                .find(|(_, hash)| app_passwords::verify(&presented, hash))
                .map(|(id, _)| id)
        })
        .await
        .ok()
        .flatten();
        let Some(app_password) = matched else {
            return invalid("wrong app password for this person");
        };
        let _ = self
            .shared
            .store
            .touch_app_password(&app_password, now)
            .await;
        self.bind_as(Bound::User {
            tree: Box::new(tree),
            dn,
            user,
            login: login.to_owned(),
            app_password,
        });
        result(LdapResultCode::Success, "")
    }

    fn extended(&self, req: &LdapExtendedRequest) -> LdapExtendedResponse {
        match req.name.as_str() {
            WHOAMI_OID => {
                let authzid = match &self.bound {
                    Bound::Anonymous => String::new(),
                    Bound::Service { dn, .. } | Bound::User { dn, .. } => format!("dn:{dn}"),
                };
                LdapExtendedResponse {
                    res: result(LdapResultCode::Success, ""),
                    name: None,
                    value: Some(authzid.into_bytes()),
                }
            }
            STARTTLS_OID => LdapExtendedResponse {
                res: result(
                    LdapResultCode::ProtocolError,
                    "StartTLS is not supported: connect to the LDAPS port instead",
                ),
                name: Some(STARTTLS_OID.to_owned()),
                value: None,
            },
            other => LdapExtendedResponse {
                res: result(
                    LdapResultCode::ProtocolError,
                    format!("extended operation {other} is not supported"),
                ),
                name: None,
                value: None,
            },
        }
    }

    /// The tree `dn` falls in, when this connection may read it.
    async fn readable_tree(&self, dn: &Dn) -> Result<PoolTree, LdapResult> {
        match &self.bound {
            // The bind named the pool: no need to list the pools on every operation.
            Bound::Service { tree, .. } | Bound::User { tree, .. } => {
                self.still_valid().await?;
                if tree.contains(dn) {
                    Ok((**tree).clone())
                } else {
                    Err(result(
                        LdapResultCode::NoSuchObject,
                        "no such entry for this bind: it reads only its own pool",
                    ))
                }
            }
            Bound::Anonymous => {
                let trees = self
                    .shared
                    .trees()
                    .await
                    .map_err(|e| result(LdapResultCode::Unavailable, format!("store: {e}")))?;
                Err(if trees.iter().any(|t| t.contains(dn)) {
                    result(
                        LdapResultCode::InsufficentAccessRights,
                        "bind first: anonymous connections read only the Root DSE",
                    )
                } else {
                    result(LdapResultCode::NoSuchObject, "no such entry")
                })
            }
        }
    }

    /// A bind lasts as long as what it was made with: a service credential revoked or
    /// expired, an app password revoked or expired, or a person no longer active, and the
    /// next operation of the connection is refused (docs/ldap.md, "Binds").
    async fn still_valid(&self) -> Result<(), LdapResult> {
        let unavailable =
            |e: StoreError| result(LdapResultCode::Unavailable, format!("store: {e}"));
        let epoch = self.shared.store.write_epoch();
        let began = Instant::now();
        let last = *self.checked.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|c| c.holds(epoch, now_ms())) {
            return Ok(());
        }
        let mut expires_at = None;
        let refused = match &self.bound {
            Bound::Anonymous => None,
            Bound::Service { credential, .. } => {
                let stored = self
                    .shared
                    .store
                    .get_credential(credential)
                    .await
                    .map_err(unavailable)?;
                match &stored {
                    None => Some("the service credential was deleted"),
                    Some(c) => {
                        expires_at = c.credential.expires_at;
                        c.credential.unusable(now_ms())
                    }
                }
            }
            Bound::User {
                tree,
                user,
                app_password,
                ..
            } => {
                let stored = self
                    .shared
                    .store
                    .get_app_password(app_password)
                    .await
                    .map_err(unavailable)?;
                let active = self
                    .shared
                    .store
                    .active_user_ids(&tree.pool_id, std::slice::from_ref(user))
                    .await
                    .map_err(unavailable)?;
                expires_at = stored.as_ref().and_then(|p| p.password.expires_at);
                if !stored.is_some_and(|p| p.password.live(now_ms())) {
                    Some("the app password was revoked or has expired")
                } else if !active.contains(user) {
                    Some("the person is no longer active")
                } else {
                    None
                }
            }
        };
        match refused {
            None => {
                *self.checked.lock().unwrap_or_else(|e| e.into_inner()) = Some(Checked {
                    epoch,
                    at: began,
                    expires_at,
                });
                Ok(())
            }
            Some(why) => Err(result(
                LdapResultCode::InsufficentAccessRights,
                format!("{why}: bind again"),
            )),
        }
    }

    async fn compare(&self, req: LdapCompareRequest) -> LdapResult {
        let Ok(dn) = Dn::parse(&req.dn) else {
            return result(LdapResultCode::InvalidDNSyntax, "not a valid DN");
        };
        let tree = match self.readable_tree(&dn).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        let Some(target) = tree.locate(&dn) else {
            return result(LdapResultCode::NoSuchObject, "no such entry");
        };
        if let Bound::User { login, .. } = &self.bound
            && target != Target::Entry(Container::People, login.clone())
        {
            return result(
                LdapResultCode::InsufficentAccessRights,
                "a person's bind reads only its own entry: compare with a service bind",
            );
        }
        let Ok(value) = String::from_utf8(req.val) else {
            return result(
                LdapResultCode::InvalidAttributeSyntax,
                "the value is not UTF-8",
            );
        };
        if schema::attribute(&req.atype).is_none() {
            return result(
                LdapResultCode::UndefinedAttributeType,
                format!("unknown attribute {}", req.atype),
            );
        }
        let search = Search {
            store: &self.shared.store,
            departments: &self.shared.departments,
            tree: &tree,
            filter: &LdapFilter::Present("objectClass".into()),
            member_of: schema::canonical(&req.atype) == Some("memberOf"),
            modified: schema::canonical(&req.atype) == Some("modifyTimestamp"),
            members: MEMBER_ATTRIBUTES
                .iter()
                .any(|m| schema::canonical(&req.atype) == Some(*m)),
        };
        match search.fixed_entry(&target).await {
            Ok(Some(entry)) if entry.has_value(&req.atype, &value) => {
                result(LdapResultCode::CompareTrue, "")
            }
            Ok(Some(_)) => result(LdapResultCode::CompareFalse, ""),
            Ok(None) => result(LdapResultCode::NoSuchObject, "no such entry"),
            Err(e) => result(LdapResultCode::Unavailable, format!("store: {e}")),
        }
    }

    async fn search<F, Fut>(
        &self,
        id: i32,
        req: LdapSearchRequest,
        paged: Option<(i64, Vec<u8>)>,
        send: &mut F,
    ) where
        F: FnMut(LdapMsg) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let done = |res: LdapResult, ctrl: Vec<LdapControl>| LdapMsg {
            msgid: id,
            op: LdapOp::SearchResultDone(res),
            ctrl,
        };
        // RFC 2696: the response to a paged request always carries the control back.
        let paged_ctrl = |cookie: Vec<u8>| match paged {
            Some(_) => vec![LdapControl::SimplePagedResults { size: 0, cookie }],
            None => Vec::new(),
        };
        let Ok(base) = Dn::parse(&req.base) else {
            send(done(
                result(
                    LdapResultCode::InvalidDNSyntax,
                    "the search base is not a valid DN",
                ),
                paged_ctrl(Vec::new()),
            ))
            .await;
            return;
        };
        // The Root DSE and the subschema entry.
        let special = if base.is_root() && req.scope == LdapSearchScope::Base {
            Some(self.root_dse().await)
        } else if base.normalized() == subschema_dn().normalized()
            && req.scope == LdapSearchScope::Base
        {
            Some(Ok(subschema()))
        } else {
            None
        };
        if let Some(entry) = special {
            let entry = match entry {
                Ok(e) => e,
                Err(r) => {
                    send(done(r, paged_ctrl(Vec::new()))).await;
                    return;
                }
            };
            if self.bound == Bound::Anonymous && self.shared.settings.anonymous == Anonymous::Off {
                send(done(
                    result(
                        LdapResultCode::InsufficentAccessRights,
                        "bind first: anonymous reads are off (ldap_anonymous = \"root_dse\" allows the Root DSE)",
                    ),
                    paged_ctrl(Vec::new()),
                ))
                .await;
                return;
            }
            if crate::filter::matches(&req.filter, &entry) {
                send(result_entry(id, &entry, &req.attrs, req.typesonly)).await;
            }
            send(done(
                result(LdapResultCode::Success, ""),
                paged_ctrl(Vec::new()),
            ))
            .await;
            return;
        }
        let tree = match self.readable_tree(&base).await {
            Ok(t) => t,
            Err(r) => {
                send(done(r, paged_ctrl(Vec::new()))).await;
                return;
            }
        };
        let Some(target) = tree.locate(&base) else {
            send(done(
                result(LdapResultCode::NoSuchObject, "no such entry"),
                paged_ctrl(Vec::new()),
            ))
            .await;
            return;
        };
        // A person's bind reads its own entry only: its `uid` joins the filter (an index
        // look-up, never a walk).
        let own_only;
        let filter = match &self.bound {
            Bound::User { login, .. } => {
                own_only = LdapFilter::And(vec![
                    req.filter.clone(),
                    LdapFilter::Equality("uid".into(), login.clone()),
                ]);
                &own_only
            }
            _ => &req.filter,
        };
        let plan = search::plan(&target, &req.scope);
        let wants_member_of = search::wants(&req.attrs, &req.filter, "memberOf");
        let walk = Search {
            store: &self.shared.store,
            departments: &self.shared.departments,
            tree: &tree,
            filter,
            member_of: wants_member_of,
            modified: search::wants(&req.attrs, &req.filter, "modifyTimestamp"),
            members: search::wants_any(&req.attrs, &req.filter, MEMBER_ATTRIBUTES),
        };
        // One named entry (scope base or sub of a leaf): read once, no walk, no paging.
        if let [target @ Target::Entry(..)] = plan.fixed.as_slice() {
            let res = match walk.fixed_entry(target).await {
                Ok(Some(entry)) => {
                    if crate::filter::matches(filter, &entry) {
                        send(result_entry(id, &entry, &req.attrs, req.typesonly)).await;
                    }
                    result(LdapResultCode::Success, "")
                }
                Ok(None) => result(LdapResultCode::NoSuchObject, "no such entry"),
                Err(e) => result(LdapResultCode::Unavailable, format!("store: {e}")),
            };
            send(done(res, paged_ctrl(Vec::new()))).await;
            return;
        }
        let settings = &self.shared.settings;
        let client_limit = usize::try_from(req.sizelimit).ok().filter(|n| *n > 0);
        let fingerprint = cookie::search_fingerprint(
            &self.shared.key,
            &[
                &base.normalized().to_string(),
                &format!("{:?}", req.scope),
                &format!("{:?}", req.filter),
                &req.attrs.join("\u{0}").to_lowercase(),
            ],
        );
        let (from, limit) = match &paged {
            Some((size, cookie)) => {
                let from = if cookie.is_empty() {
                    Position {
                        stage: 0,
                        after: None,
                    }
                } else {
                    match cookie::open(&self.shared.key, &fingerprint, cookie) {
                        Ok(p) => p,
                        Err(e) => {
                            send(done(
                                result(
                                    LdapResultCode::UnwillingToPerform,
                                    format!("{e}: start the paged search again without a cookie"),
                                ),
                                paged_ctrl(Vec::new()),
                            ))
                            .await;
                            return;
                        }
                    }
                };
                // Size 0 with a cookie abandons the paged search (RFC 2696 §3).
                if *size <= 0 {
                    send(done(
                        result(LdapResultCode::Success, ""),
                        paged_ctrl(Vec::new()),
                    ))
                    .await;
                    return;
                }
                let size = usize::try_from(*size).unwrap_or(usize::MAX);
                (from, size.min(settings.max_page))
            }
            None => (
                Position {
                    stage: 0,
                    after: None,
                },
                client_limit
                    .unwrap_or(settings.size_limit)
                    .min(settings.size_limit),
            ),
        };
        let attrs = &req.attrs;
        let typesonly = req.typesonly;
        // Each entry is written as it is made: a search holds one store page at a time.
        let ended = walk
            .run(&plan, &from, limit, |entry| {
                send(result_entry(id, &entry, attrs, typesonly))
            })
            .await;
        let (res, cookie) = match ended {
            Err(e) => (
                result(LdapResultCode::Unavailable, format!("store: {e}")),
                Vec::new(),
            ),
            Ok(Ended::Done) => (result(LdapResultCode::Success, ""), Vec::new()),
            Ok(Ended::More(at)) if paged.is_some() => (
                result(LdapResultCode::Success, ""),
                cookie::seal(&self.shared.key, &fingerprint, &at),
            ),
            Ok(Ended::More(_)) => (
                result(
                    LdapResultCode::SizeLimitExceeded,
                    format!("more than {limit} entries: use paged results or a narrower filter"),
                ),
                Vec::new(),
            ),
        };
        send(done(res, paged_ctrl(cookie))).await;
    }

    async fn root_dse(&self) -> Result<Entry, LdapResult> {
        let trees = self
            .shared
            .trees()
            .await
            .map_err(|e| result(LdapResultCode::Unavailable, format!("store: {e}")))?;
        let mut e = Entry::new(Dn::root());
        // A service credential sees its own pool's naming context; others see all.
        let contexts: Vec<String> = trees
            .iter()
            .filter(|t| {
                self.bound
                    .tree()
                    .is_none_or(|mine| mine.pool_id == t.pool_id)
            })
            .map(|t| t.base.to_string())
            .collect();
        e.set("objectClass", ["top", "OpenLDAProotDSE"])
            .set("namingContexts", contexts)
            .set("supportedLDAPVersion", ["3"])
            .set("supportedControl", [PAGED_RESULTS_OID])
            .set("supportedExtension", [WHOAMI_OID])
            .set("supportedFeatures", [ALL_OPERATIONAL_FEATURE_OID])
            .set("vendorName", ["orgsync"])
            .set("vendorVersion", [env!("CARGO_PKG_VERSION")])
            .set("subschemaSubentry", [subschema_dn().to_string()]);
        Ok(e)
    }
}

fn read_only() -> LdapResult {
    result(
        LdapResultCode::UnwillingToPerform,
        "this directory is a read-only view of Feishu: change it in Feishu",
    )
}

fn subschema_dn() -> Dn {
    Dn::root().child("cn", "Subschema")
}

/// A small subschema entry: the attribute types this server publishes.
fn subschema() -> Entry {
    let mut e = Entry::new(subschema_dn());
    let types = schema::ATTRIBUTES.iter().map(|a| {
        let syntax = match a.syntax {
            schema::Syntax::Dn => "1.3.6.1.4.1.1466.115.121.1.12",
            schema::Syntax::Integer => "1.3.6.1.4.1.1466.115.121.1.27",
            schema::Syntax::Time => "1.3.6.1.4.1.1466.115.121.1.24",
            _ => "1.3.6.1.4.1.1466.115.121.1.15",
        };
        let usage = if a.operational {
            " NO-USER-MODIFICATION USAGE directoryOperation"
        } else {
            ""
        };
        format!("( {} NAME '{}' SYNTAX {syntax}{usage} )", a.oid, a.name)
    });
    e.set("objectClass", ["top", "subschema", "subentry"])
        .set("cn", ["Subschema"])
        .set("attributeTypes", types)
        .set(
            "objectClasses",
            [
                "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
                "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) )",
                "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL )",
                "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL )",
                "( 2.5.6.9 NAME 'groupOfNames' SUP top STRUCTURAL MUST ( member $ cn ) )",
                "( 2.5.6.17 NAME 'groupOfUniqueNames' SUP top STRUCTURAL MUST ( uniqueMember $ cn ) )",
                "( 2.5.6.4 NAME 'organization' SUP top STRUCTURAL MUST o )",
                "( 2.5.6.5 NAME 'organizationalUnit' SUP top STRUCTURAL MUST ou )",
                "( 1.3.6.1.1.1.2.0 NAME 'posixAccount' SUP top AUXILIARY MUST ( cn $ uid $ uidNumber $ gidNumber $ homeDirectory ) MAY ( loginShell $ gecos ) )",
                "( 1.3.6.1.1.1.2.2 NAME 'posixGroup' SUP top AUXILIARY MUST ( cn $ gidNumber ) MAY memberUid )",
            ],
        );
    e
}

/// The wire form of an entry with the attributes the search asked for.
fn result_entry(id: i32, entry: &Entry, attrs: &[String], typesonly: bool) -> LdapMsg {
    let mut attributes: Vec<LdapPartialAttribute> = entry
        .select(attrs)
        .into_iter()
        .map(|(name, values)| LdapPartialAttribute {
            atype: name.to_owned(),
            vals: if typesonly {
                Vec::new()
            } else {
                values.iter().map(|v| v.as_bytes().to_vec()).collect()
            },
        })
        .collect();
    let wants = |n: &str| {
        attrs.iter().any(|a| a == "+") || attrs.iter().any(|a| schema::canonical(a) == Some(n))
    };
    if wants("entryDN") {
        attributes.push(LdapPartialAttribute {
            atype: "entryDN".into(),
            vals: if typesonly {
                Vec::new()
            } else {
                vec![entry.dn.to_string().into_bytes()]
            },
        });
    }
    msg(
        id,
        LdapOp::SearchResultEntry(LdapSearchResultEntry {
            dn: entry.dn.to_string(),
            attributes,
        }),
    )
}
