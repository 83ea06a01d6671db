//! Behaviour switches. Every point the protocol reference marks UNVERIFIED (§9) is a switch
//! here, defaulting to the reading we consider most likely (and, where that is a toss-up, the
//! stricter one for a client). All of them can be changed at runtime through
//! [`crate::server::EmulatorState::update_behaviour`].

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::faults::FaultConfig;
use crate::pusher::PushConfig;
use crate::ratelimit::RateLimitConfig;
use crate::tenant::Tenant;

/// `GET /departments/:id` on a deleted department (§9 point 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedDepartmentRead {
    /// Code 40015 `department not exist` (the documented code).
    #[default]
    NotExist,
    /// The department object with `status.is_deleted = true`.
    Render,
}

/// `department_ids` of a resigned user read by id (§9 point 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResignedDepartmentIds {
    /// `"department_ids": []`.
    #[default]
    Empty,
    /// No `department_ids` key.
    Absent,
}

/// `user_id_type=user_id` (or `member_id_type=user_id`) without
/// `contact:user.employee_id:readonly` (§9 point 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserIdWithoutPermission {
    /// 99991672 naming `contact:user.employee_id:readonly`.
    #[default]
    Error,
    /// The request succeeds; every user id in the answer is `""`.
    Empty,
}

/// Out-of-range `page_size` (§9 point 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageSizeOutOfRange {
    /// Code 40011 `page size is invalid`.
    #[default]
    Reject,
    /// Below 1 → the endpoint's default; above the maximum → the maximum.
    Clamp,
}

/// The switches of the Open API surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// A token lives this long (Feishu: 2 h).
    pub token_lifetime: Duration,
    /// The token endpoint returns the current token while at least this much remains,
    /// and mints a new one below it (Feishu: 30 min).
    pub token_reuse_threshold: Duration,
    /// HTTP status of 99991661 / 99991663 / 99991671 (§9 point 1).
    pub token_error_status: u16,
    /// HTTP status of 10014 `app secret invalid` (§9 point 1; seen as 200 and 400).
    pub bad_secret_status: u16,
    /// HTTP status of 99991672 (§9 point 1; 400 or 403).
    pub permission_error_status: u16,
    pub deleted_department_read: DeletedDepartmentRead,
    pub resigned_department_ids: ResignedDepartmentIds,
    /// A partial-scope app may read a resigned user it can no longer place in an
    /// in-scope department (§9 point 2; expected: no → 41050).
    pub resigned_user_readable_in_partial_scope: bool,
    /// `find_by_department` lists frozen, exited and not-yet-joined users with their
    /// flags (§9 point 2; expected: yes).
    pub list_inactive_users: bool,
    pub user_id_without_permission: UserIdWithoutPermission,
    pub page_size_out_of_range: PageSizeOutOfRange,
    /// Answer 43010 to every `fetch_child=true`, not only for departments marked big.
    pub refuse_all_recursion: bool,
    /// Drop empty lists from `data` (`{"has_more":false}`), as Feishu's Go services do
    /// with `omitempty`. Off: always send `"items": []`.
    pub omit_empty_lists: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(7200),
            token_reuse_threshold: Duration::from_secs(1800),
            token_error_status: 400,
            bad_secret_status: 400,
            permission_error_status: 400,
            deleted_department_read: DeletedDepartmentRead::NotExist,
            resigned_department_ids: ResignedDepartmentIds::Empty,
            resigned_user_readable_in_partial_scope: false,
            list_inactive_users: true,
            user_id_without_permission: UserIdWithoutPermission::Error,
            page_size_out_of_range: PageSizeOutOfRange::Reject,
            refuse_all_recursion: false,
            omit_empty_lists: true,
        }
    }
}

/// Everything [`crate::server::Emulator::start`] needs.
#[derive(Debug)]
pub struct EmulatorConfig {
    /// Default `127.0.0.1:0` (a free port; read it back with `Emulator::addr`).
    pub bind: SocketAddr,
    pub tenant: Tenant,
    /// The root department's name (`GET /departments/0`).
    pub tenant_name: String,
    pub behaviour: Behaviour,
    pub rate_limit: RateLimitConfig,
    pub faults: FaultConfig,
    /// The event pusher's switches (retry time scale, duplicates, reordering, drops).
    pub push: PushConfig,
    /// Seeds the page-token key and event ids, so a seeded run is reproducible.
    pub seed: u64,
    /// Base of the avatar URLs in user objects (the emulator serves placeholder images under
    /// `/avatar/`). `None`: the emulator's own address once bound; give one when browsers
    /// reach the emulator under another name.
    pub avatar_base: Option<String>,
}

impl EmulatorConfig {
    pub fn new(tenant: Tenant) -> Self {
        Self {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tenant,
            tenant_name: "Emulated Tenant".to_owned(),
            behaviour: Behaviour::default(),
            rate_limit: RateLimitConfig::default(),
            faults: FaultConfig::default(),
            push: PushConfig::default(),
            seed: 0,
            avatar_base: None,
        }
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self::new(Tenant::new("736588c9260f175c"))
    }
}
