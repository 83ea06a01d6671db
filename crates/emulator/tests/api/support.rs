//! Shared test fixtures: a hand-built tenant, emulator start-up, clients (the real
//! `feishu` client and a raw reqwest one for bytes and headers) and a client-driven import.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use emulator::tenant::{
    AppRecord, ContactScope, CustomAttrRecord, DepartmentRecord, GroupKind, GroupRecord, I18n,
    Membership, StatusFlags, Tenant, UserKey, UserRecord, perm,
};
use emulator::{Emulator, EmulatorConfig, ratelimit::RateLimitConfig};
use feishu::client::{
    BaseUrl, ClientConfig, ContactScopes, FeishuClient, FeishuError, PacingConfig, RetryConfig,
};
use feishu::ids::{GroupType, MemberIdType, MemberType};
use feishu::model::{Department, Group, User};
use futures::TryStreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

pub const APP: &str = "cli_a1b2c3d4e5f60718";
pub const SECRET: &str = "emulator-secret-full-scope-0001";
pub const PARTIAL_APP: &str = "cli_partial00000001";
pub const PARTIAL_SECRET: &str = "emulator-secret-partial-0001";

/// An app with everything a directory sync asks for, plus HRBPs.
pub fn full_app() -> AppRecord {
    let mut app = AppRecord::new(APP, SECRET);
    app.permissions.insert(perm::DEPARTMENT_HRBP.to_owned());
    app.permissions
        .insert(emulator::api::contact::PERM_USER_ID_LOOKUP.to_owned());
    app
}

/// Notable objects of a hand-built tenant.
#[derive(Debug, Clone)]
pub struct Landmarks {
    /// First-level departments, in tree order.
    pub top: Vec<String>,
    /// The deepest department of a long chain (depth [`DEEP`]).
    pub deep: String,
    /// A department marked big (43010 on `fetch_child=true`).
    pub big: String,
    /// A department in the deleted list.
    pub deleted: String,
    pub resigned: UserKey,
    pub frozen: UserKey,
    pub unjoined: UserKey,
    /// A user directly under the root.
    pub root_user: UserKey,
    /// A user in several departments.
    pub multi: UserKey,
}

pub const DEEP: usize = 12;

fn department(open_id: String, n: usize, parent: &str, order: i64) -> DepartmentRecord {
    DepartmentRecord {
        open_department_id: open_id,
        department_id: format!("D{n:04}"),
        name: format!("Department {n}"),
        i18n_name: I18n {
            zh_cn: Some(format!("部门{n}")),
            en_us: Some(format!("Department {n}")),
            ja_jp: None,
        },
        parent: parent.to_owned(),
        order,
        leaders: Vec::new(),
        chat_id: n.is_multiple_of(3).then(|| format!("oc_{n:032x}")),
        unit_ids: Vec::new(),
        hrbps: Vec::new(),
        big: false,
    }
}

fn user(key: UserKey, memberships: Vec<Membership>, status: StatusFlags) -> UserRecord {
    UserRecord {
        key,
        user_id: format!("u{key:05}"),
        name: format!("用户{key}"),
        en_name: Some(format!("User {key}")),
        nickname: key.is_multiple_of(4).then(|| format!("nick{key}")),
        email: Some(format!("user{key}@example.com")),
        enterprise_email: key
            .is_multiple_of(5)
            .then(|| format!("user{key}@corp.example.com")),
        mobile: Some(format!("+86138{key:08}")),
        mobile_visible: true,
        gender: (key % 3) as i64,
        status,
        memberships,
        leader: None,
        city: Some("Shanghai".into()),
        country: Some("CN".into()),
        work_station: None,
        join_time: 1_600_000_000 + key as i64,
        is_tenant_manager: key == 1,
        employee_no: Some(format!("E{key:06}")),
        employee_type: 1 + (key % 5) as i64,
        job_title: Some("Engineer".into()),
        custom_attrs: if key.is_multiple_of(7) {
            vec![CustomAttrRecord {
                id: "C-1".into(),
                kind: "TEXT".into(),
                text: format!("attr {key}"),
                url: None,
            }]
        } else {
            Vec::new()
        },
    }
}

fn membership(department: &str, primary: bool, rng: &mut ChaCha8Rng) -> Membership {
    Membership {
        department: department.to_owned(),
        user_order: rng.random_range(0..100),
        department_order: rng.random_range(0..100),
        primary,
    }
}

/// A deterministic tenant with `users` users and about `departments` departments (plus a
/// chain of depth [`DEEP`]), leaders, HRBPs, leavers, frozen and root users and groups.
pub fn build_tenant(users: usize, departments: usize, apps: Vec<AppRecord>) -> (Tenant, Landmarks) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut t = Tenant::new("736588c9260f175c");
    for app in apps {
        t.apps.insert(app.app_id.clone(), app);
    }
    let mut ids: Vec<String> = Vec::new();
    let mut depth: BTreeMap<String, usize> = BTreeMap::new();
    let mut top = Vec::new();
    let add = |t: &mut Tenant,
               ids: &mut Vec<String>,
               depth: &mut BTreeMap<String, usize>,
               parent: &str,
               rng: &mut ChaCha8Rng| {
        let open_id = t.new_open_department_id();
        let n = ids.len() + 1;
        let d = department(open_id.clone(), n, parent, rng.random_range(0..1000));
        t.departments.insert(open_id.clone(), d);
        let level = if parent == "0" { 1 } else { depth[parent] + 1 };
        depth.insert(open_id.clone(), level);
        ids.push(open_id.clone());
        open_id
    };
    for _ in 0..5 {
        let id = add(&mut t, &mut ids, &mut depth, "0", &mut rng);
        top.push(id);
    }
    // A long chain under the first top-level department.
    let mut deep = top[0].clone();
    for _ in 1..DEEP {
        deep = add(&mut t, &mut ids, &mut depth, &deep.clone(), &mut rng);
    }
    while ids.len() < departments.max(ids.len()) {
        let candidates: Vec<&String> = ids.iter().filter(|d| depth[*d] < 5).collect();
        let parent = candidates[rng.random_range(0..candidates.len())].clone();
        add(&mut t, &mut ids, &mut depth, &parent, &mut rng);
    }
    let big = top[1].clone();
    if let Some(d) = t.departments.get_mut(&big) {
        d.big = true;
    }
    // A deleted department that used to sit under the third top-level one.
    let deleted_id = t.new_open_department_id();
    let mut deleted = department(deleted_id.clone(), 9999, &top[2], 5);
    deleted.department_id = "D-deleted".into();
    t.deleted_departments.insert(deleted_id.clone(), deleted);

    let mut keys = Vec::new();
    let mut marks = (0, 0, 0, 0, 0);
    for i in 0..users {
        let key = t.next_user_key;
        t.next_user_key += 1;
        let mut status = StatusFlags::active();
        let memberships = if i % 97 == 5 {
            status.resigned = true;
            marks.0 = key;
            Vec::new()
        } else if i % 50 == 0 {
            marks.3 = key;
            vec![membership("0", true, &mut rng)]
        } else if i % 10 == 1 {
            marks.4 = key;
            let mut picked = BTreeSet::new();
            while picked.len() < 2 + i % 2 {
                picked.insert(ids[rng.random_range(0..ids.len())].clone());
            }
            picked
                .iter()
                .enumerate()
                .map(|(j, d)| membership(d, j == 0, &mut rng))
                .collect()
        } else {
            // Every department gets someone; the deep one too.
            let d = if i < ids.len() {
                ids[i].clone()
            } else {
                ids[rng.random_range(0..ids.len())].clone()
            };
            vec![membership(&d, true, &mut rng)]
        };
        if i % 61 == 7 {
            status.frozen = true;
            marks.1 = key;
        }
        if i % 83 == 9 {
            status.unjoin = true;
            status.activated = false;
            marks.2 = key;
        }
        let mut u = user(key, memberships, status);
        if let Some(prev) = keys.last() {
            u.leader = (i % 4 != 0).then_some(*prev);
        }
        t.users.insert(key, u);
        keys.push(key);
    }
    let deep_user = keys[keys.len() / 2];
    if let Some(u) = t.users.get_mut(&deep_user) {
        u.status = StatusFlags::active();
        u.memberships = vec![membership(&deep, true, &mut rng)];
    }
    // Leaders and HRBPs from among active users.
    let active: Vec<UserKey> = t
        .users
        .values()
        .filter(|u| !u.status.resigned)
        .map(|u| u.key)
        .collect();
    for (n, id) in ids.iter().enumerate() {
        if let Some(d) = t.departments.get_mut(id) {
            if n % 2 == 0 {
                d.leaders.push((1, active[n % active.len()]));
            }
            if n % 6 == 0 {
                d.leaders.push((2, active[(n * 7 + 3) % active.len()]));
            }
            if n % 5 == 0 {
                d.hrbps.push(active[(n * 11 + 1) % active.len()]);
            }
        }
    }
    for g in 0..8 {
        let kind = if g < 6 {
            GroupKind::Normal
        } else {
            GroupKind::Dynamic
        };
        let mut users: Vec<UserKey> = (0..20 + g * 3)
            .map(|_| active[rng.random_range(0..active.len())])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        users.sort_unstable();
        let departments = if kind == GroupKind::Normal {
            (0..3)
                .map(|_| ids[rng.random_range(0..ids.len())].clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            Vec::new()
        };
        let id = format!("g{:06}", 100 + g);
        t.groups.insert(
            id.clone(),
            GroupRecord {
                id,
                group_id: format!("grp_{g}"),
                name: format!("Group {g}"),
                description: format!("test group {g}"),
                kind,
                users,
                departments,
            },
        );
    }
    t.invalidate();
    let landmarks = Landmarks {
        top,
        deep,
        big,
        deleted: deleted_id,
        resigned: marks.0,
        frozen: marks.1,
        unjoined: marks.2,
        root_user: marks.3,
        multi: marks.4,
    };
    (t, landmarks)
}

/// Adds a partial-scope app picking `departments`, `users` and `groups`.
pub fn partial_app(
    departments: Vec<String>,
    users: Vec<UserKey>,
    groups: Vec<String>,
) -> AppRecord {
    let mut app = AppRecord::new(PARTIAL_APP, PARTIAL_SECRET);
    app.scope = ContactScope::Partial {
        departments,
        users,
        groups,
    };
    app
}

/// Starts an emulator for `tenant` without throttling (tests that need it turn it on).
pub async fn start(tenant: Tenant, tweak: impl FnOnce(&mut EmulatorConfig)) -> Emulator {
    let mut config = EmulatorConfig::new(tenant);
    config.rate_limit = RateLimitConfig::disabled();
    tweak(&mut config);
    Emulator::start(config).await.unwrap()
}

/// Retries quickly, no pacing: the emulator is local.
pub fn client_config(emu: &Emulator, app_id: &str, secret: &str) -> ClientConfig {
    let mut config = ClientConfig::new(BaseUrl::parse(&emu.base_url()).unwrap(), app_id, secret);
    config.pacing = PacingConfig::disabled();
    config.retry = RetryConfig {
        max_retries: 8,
        min_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        max_rate_limit_waits: 5,
        max_rate_limit_wait: Duration::from_secs(2),
    };
    config
}

pub fn client(emu: &Emulator, app_id: &str, secret: &str) -> FeishuClient {
    FeishuClient::new(client_config(emu, app_id, secret)).unwrap()
}

/// One raw HTTP answer.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl RawResponse {
    pub fn code(&self) -> i64 {
        self.json["code"].as_i64().unwrap_or(i64::MIN)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn data(&self) -> &Value {
        &self.json["data"]
    }
}

/// Raw requests, for what the client hides (statuses, headers, exact bodies).
pub struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    pub fn new(emu: &Emulator) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: emu.base_url(),
        }
    }

    async fn read(response: reqwest::Response) -> RawResponse {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        RawResponse {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn post(&self, path: &str, body: &str) -> RawResponse {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        Self::read(r).await
    }

    pub async fn token_response(&self, app_id: &str, secret: &str) -> RawResponse {
        let body = serde_json::json!({"app_id": app_id, "app_secret": secret}).to_string();
        self.post("/open-apis/auth/v3/tenant_access_token/internal", &body)
            .await
    }

    pub async fn token(&self, app_id: &str, secret: &str) -> String {
        let r = self.token_response(app_id, secret).await;
        assert_eq!(r.code(), 0, "{}", r.text);
        r.json["tenant_access_token"].as_str().unwrap().to_owned()
    }

    /// GET `path_and_query` with `Authorization: Bearer <token>` (none when `None`).
    pub async fn get(&self, token: Option<&str>, path_and_query: &str) -> RawResponse {
        let mut request = self.http.get(format!("{}{path_and_query}", self.base));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        Self::read(request.send().await.unwrap()).await
    }
}

/// What an import through the client saw.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub scopes: ContactScopes,
    pub full_scope: bool,
    /// By `open_department_id`, with how often each was listed.
    pub departments: BTreeMap<String, Department>,
    pub department_listings: BTreeMap<String, usize>,
    /// By `open_id`: the user and the departments it was listed in (in listing order).
    pub users: BTreeMap<String, (User, Vec<String>)>,
    /// By group id: the group, its user members and department members.
    pub groups: BTreeMap<String, (Group, Vec<String>, Vec<String>)>,
    pub recursion_refused: usize,
}

impl Snapshot {
    fn add_department(&mut self, d: Department) {
        let id = d.open_department_id.clone().unwrap();
        *self.department_listings.entry(id.clone()).or_default() += 1;
        self.departments.insert(id, d);
    }
}

/// The import of protocol §3.4 through the real client (open ids throughout).
pub async fn import(client: &FeishuClient) -> Result<Snapshot, FeishuError> {
    let mut snap = Snapshot {
        scopes: client.scopes().await?,
        ..Snapshot::default()
    };
    snap.full_scope = match client
        .department_children_pages("0", false)
        .try_next()
        .await
    {
        Ok(_) => true,
        Err(FeishuError::RootDepartmentOutOfScope { .. }) => false,
        Err(e) => return Err(e),
    };
    let seeds = if snap.full_scope {
        vec!["0".to_owned()]
    } else {
        snap.scopes.department_ids.clone()
    };
    for seed in &seeds {
        if seed != "0" {
            let d = client.department(seed).await?;
            snap.add_department(d);
        }
        match client
            .department_children(seed, true)
            .try_collect::<Vec<_>>()
            .await
        {
            Ok(all) => all.into_iter().for_each(|d| snap.add_department(d)),
            Err(FeishuError::RecursionRefused { .. }) => {
                snap.recursion_refused += 1;
                let mut queue = VecDeque::from([seed.clone()]);
                while let Some(parent) = queue.pop_front() {
                    let children: Vec<Department> = client
                        .department_children(&parent, false)
                        .try_collect()
                        .await?;
                    for d in children {
                        queue.push_back(d.open_department_id.clone().unwrap());
                        snap.add_department(d);
                    }
                }
            }
            Err(e) => return Err(e),
        }
    }
    let mut walk: Vec<String> = snap.departments.keys().cloned().collect();
    if snap.full_scope {
        walk.insert(0, "0".to_owned());
    }
    for d in walk {
        let users: Vec<User> = client.users_by_department(&d).try_collect().await?;
        for u in users {
            let id = u.open_id.clone().unwrap();
            let entry = snap
                .users
                .entry(id)
                .or_insert_with(|| (u.clone(), Vec::new()));
            assert_eq!(entry.0, u, "a user renders the same in every listing");
            entry.1.push(d.clone());
        }
    }
    for id in snap.scopes.user_ids.clone() {
        if let Entry::Vacant(slot) = snap.users.entry(id) {
            let u = client.user(slot.key()).await?;
            slot.insert((u, Vec::new()));
        }
    }
    let mut groups: Vec<Group> = Vec::new();
    for kind in GroupType::ALL {
        groups.extend(client.groups(kind).try_collect::<Vec<_>>().await?);
    }
    for id in &snap.scopes.group_ids {
        if !groups.iter().any(|g| g.id.as_deref() == Some(id)) {
            groups.push(client.group(id).await?);
        }
    }
    for g in groups {
        let id = g.id.clone().unwrap();
        let members = |t| client.group_members(&id, t, MemberIdType::OpenId);
        let users = members(MemberType::User)
            .map_ok(|m| m.member_id.unwrap_or_default())
            .try_collect()
            .await?;
        let departments = members(MemberType::Department)
            .map_ok(|m| m.member_id.unwrap_or_default())
            .try_collect()
            .await?;
        snap.groups.insert(id, (g, users, departments));
    }
    Ok(snap)
}
