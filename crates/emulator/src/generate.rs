//! A seeded generator of realistic tenants: a department tree, users with Chinese names,
//! leaders, memberships in several departments, leavers, suspended users and user groups.
//!
//! Pure and deterministic: the same [`GenerateConfig`] gives the same [`Tenant`]. Linear
//! in the number of users (uniqueness comes from counters and hash sets), so 100,000
//! users take seconds even in a debug build.

use std::collections::{HashMap, HashSet};

use feishu::ids::ROOT_DEPARTMENT_ID;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::names;
use crate::tenant::{
    AppRecord, CustomAttrRecord, DepartmentRecord, GroupKind, GroupRecord, I18n, Membership,
    StatusFlags, Tenant, UserKey, UserRecord,
};

/// What to generate. Shares are fractions of the user (or group) count, rounded.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    pub seed: u64,
    pub users: usize,
    pub departments: usize,
    /// Deepest level below the root; at least one chain reaches it when
    /// `departments >= max_depth`.
    pub max_depth: usize,
    pub groups: usize,
    /// Users in 2–3 departments.
    pub multi_department_share: f64,
    /// Users placed directly under the root `"0"` (and nowhere else).
    pub root_user_share: f64,
    pub frozen_share: f64,
    /// Leavers: `status.is_resigned` and no memberships.
    pub resigned_share: f64,
    /// Invited, not yet joined (`is_unjoin`, not activated).
    pub unjoined_share: f64,
    /// Left voluntarily, not yet resigned (`is_exited`); keep their memberships.
    pub exited_share: f64,
    pub dynamic_group_share: f64,
    /// Departments (with at least two members) that also get a deputy leader.
    pub deputy_leader_share: f64,
    /// Departments with an HRBP.
    pub hrbp_share: f64,
    /// Departments with a group chat.
    pub chat_share: f64,
    /// Users with custom attributes.
    pub custom_attr_share: f64,
    /// 16 hex chars; derived from the seed when `None`.
    pub tenant_key: Option<String>,
    pub email_domain: String,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            users: 200,
            departments: 20,
            max_depth: 4,
            groups: 5,
            multi_department_share: 0.10,
            root_user_share: 0.02,
            frozen_share: 0.02,
            resigned_share: 0.03,
            unjoined_share: 0.01,
            exited_share: 0.0,
            dynamic_group_share: 0.2,
            deputy_leader_share: 0.3,
            hrbp_share: 0.2,
            chat_share: 0.7,
            custom_attr_share: 0.3,
            tenant_key: None,
            email_domain: "example.com".to_owned(),
        }
    }
}

/// `share × n`, rounded, within `0..=n`.
fn share_of(n: usize, share: f64) -> usize {
    ((n as f64 * share.clamp(0.0, 1.0)).round() as usize).min(n)
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// An 8-char lowercase alphanumeric `user_id` not in `taken` (which it joins).
pub(crate) fn fresh_user_id<R: Rng + ?Sized>(rng: &mut R, taken: &mut HashSet<String>) -> String {
    loop {
        let id: String = (0..8)
            .map(|_| ALNUM[rng.random_range(0..ALNUM.len())] as char)
            .collect();
        if taken.insert(id.clone()) {
            return id;
        }
    }
}

/// 32 random hex chars (chat ids and the like).
pub(crate) fn random_hex32<R: Rng + ?Sized>(rng: &mut R) -> String {
    format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>())
}

/// A mainland mobile number, unique per `key`: `+86 1` + two digits + the key in 8 digits.
pub(crate) fn mobile_for<R: Rng + ?Sized>(rng: &mut R, key: UserKey) -> String {
    format!("+861{}{:08}", rng.random_range(30..=99), key)
}

pub(crate) fn email_for(local: &str, key: UserKey, domain: &str) -> String {
    format!("{local}.{key}@{domain}")
}

pub(crate) fn employee_no_for(key: UserKey) -> String {
    format!("E{key:06}")
}

/// 1 full-time (most), 2 intern, 3 outsourcing, 4 labour, 5 consultant.
pub(crate) fn random_employee_type<R: Rng + ?Sized>(rng: &mut R) -> i64 {
    match rng.random_range(0..100) {
        0..85 => 1,
        85..92 => 2,
        92..97 => 3,
        97..99 => 4,
        _ => 5,
    }
}

/// A fresh user with a random profile, active, without memberships or leader.
pub(crate) fn random_user<R: Rng + ?Sized>(
    rng: &mut R,
    key: UserKey,
    user_id: String,
    domain: &str,
    custom_attr_share: f64,
) -> UserRecord {
    let p = names::person(rng);
    let &(city, country) = names::CITIES.choose(rng).unwrap_or(&("北京", "CN"));
    let custom_attrs = if rng.random_bool(custom_attr_share.clamp(0.0, 1.0)) {
        vec![
            CustomAttrRecord {
                id: "C-7000000000000000001".to_owned(),
                kind: "TEXT".to_owned(),
                text: format!(
                    "工位 {}-{:02}",
                    rng.random_range(1..=9),
                    rng.random_range(1..=60)
                ),
                url: None,
            },
            CustomAttrRecord {
                id: "C-7000000000000000002".to_owned(),
                kind: "HREF".to_owned(),
                text: "个人主页".to_owned(),
                url: Some(format!("https://wiki.example.com/people/{user_id}")),
            },
        ]
    } else {
        Vec::new()
    };
    UserRecord {
        key,
        enterprise_email: rng
            .random_bool(0.3)
            .then(|| format!("{user_id}@mail.{domain}")),
        user_id,
        name: p.name,
        en_name: Some(p.en_name),
        nickname: None,
        email: Some(email_for(&p.email_local, key, domain)),
        mobile: Some(mobile_for(rng, key)),
        mobile_visible: rng.random_bool(0.95),
        gender: p.gender,
        status: StatusFlags::active(),
        memberships: Vec::new(),
        leader: None,
        city: Some(city.to_owned()),
        country: Some(country.to_owned()),
        work_station: rng.random_bool(0.5).then(|| {
            format!(
                "{}-{}F-{:03}",
                city,
                rng.random_range(1..=30),
                rng.random_range(1..=200)
            )
        }),
        // 2015-01-01 .. 2025-01-01.
        join_time: rng.random_range(1_420_070_400..1_735_689_600),
        is_tenant_manager: false,
        employee_no: Some(employee_no_for(key)),
        employee_type: random_employee_type(rng),
        job_title: names::JOB_TITLES.choose(rng).map(|s| (*s).to_owned()),
        custom_attrs,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Frozen,
    Resigned,
    Unjoined,
    Exited,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    One,
    Root,
    Several,
}

/// Builds a tenant from `config`, with `apps` installed.
pub fn generate(config: &GenerateConfig, apps: Vec<AppRecord>) -> Tenant {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let tenant_key = config
        .tenant_key
        .clone()
        .unwrap_or_else(|| format!("{:016x}", rng.random::<u64>()));
    let mut tenant = Tenant::new(tenant_key);
    for app in apps {
        tenant.apps.insert(app.app_id.clone(), app);
    }

    let tree = generate_departments(config, &mut rng, &mut tenant);
    let active = generate_users(config, &mut rng, &mut tenant, &tree);
    assign_hrbps(config, &mut rng, &mut tenant, &tree, &active);
    generate_groups(config, &mut rng, &mut tenant, &tree, &active);
    tenant.invalidate();
    tenant
}

/// The generated tree in index form, for fast walks while users are placed.
struct Tree {
    ids: Vec<String>,
    parent: Vec<Option<usize>>,
}

fn generate_departments(
    config: &GenerateConfig,
    rng: &mut ChaCha8Rng,
    tenant: &mut Tenant,
) -> Tree {
    let n = config.departments;
    let max_depth = config.max_depth.max(1);
    let mut ids: Vec<String> = Vec::with_capacity(n);
    let mut parent: Vec<Option<usize>> = Vec::with_capacity(n);
    let mut depth: Vec<usize> = Vec::with_capacity(n);
    // Departments that may still get children (depth < max_depth).
    let mut open_parents: Vec<usize> = Vec::new();
    let mut used_names = HashMap::new();
    let mut siblings: HashMap<Option<usize>, i64> = HashMap::new();
    for i in 0..n {
        let p = if i == 0 {
            None
        } else if i < max_depth {
            // The first departments form one chain down to max_depth.
            Some(i - 1)
        } else if open_parents.is_empty() || rng.random_bool(0.12) {
            None
        } else {
            open_parents.choose(rng).copied()
        };
        let d = p.map_or(1, |p| depth[p] + 1);
        let (zh, en) = names::unique_department_name(rng, p.is_none(), &mut used_names);
        let open_id = tenant.new_open_department_id();
        let sibling = siblings.entry(p).or_insert(0);
        *sibling += 1;
        let record = DepartmentRecord {
            open_department_id: open_id.clone(),
            department_id: format!("D{:04}", i + 1),
            name: zh.clone(),
            i18n_name: I18n {
                zh_cn: Some(zh),
                en_us: Some(en),
                ja_jp: None,
            },
            parent: p.map_or_else(|| ROOT_DEPARTMENT_ID.to_owned(), |p| ids[p].clone()),
            order: *sibling * 100,
            leaders: Vec::new(),
            chat_id: rng
                .random_bool(config.chat_share.clamp(0.0, 1.0))
                .then(|| format!("oc_{}", random_hex32(rng))),
            unit_ids: Vec::new(),
            hrbps: Vec::new(),
            big: false,
        };
        tenant.departments.insert(open_id.clone(), record);
        if d < max_depth {
            open_parents.push(i);
        }
        ids.push(open_id);
        parent.push(p);
        depth.push(d);
    }
    Tree { ids, parent }
}

/// Places users; returns the keys of users that are not resigned.
fn generate_users(
    config: &GenerateConfig,
    rng: &mut ChaCha8Rng,
    tenant: &mut Tenant,
    tree: &Tree,
) -> Vec<UserKey> {
    let n = config.users;
    let n_depts = tree.ids.len();

    // Exact counts, spread at random.
    let mut statuses = Vec::with_capacity(n);
    for (status, share) in [
        (Status::Resigned, config.resigned_share),
        (Status::Frozen, config.frozen_share),
        (Status::Unjoined, config.unjoined_share),
        (Status::Exited, config.exited_share),
    ] {
        let want = share_of(n, share).min(n - statuses.len());
        statuses.extend(std::iter::repeat_n(status, want));
    }
    statuses.resize(n, Status::Active);
    statuses.shuffle(rng);
    let mut placements = Vec::with_capacity(n);
    if n_depts == 0 {
        placements.resize(n, Placement::Root);
    } else {
        placements.extend(std::iter::repeat_n(
            Placement::Root,
            share_of(n, config.root_user_share),
        ));
        let several = share_of(n, config.multi_department_share).min(n - placements.len());
        if n_depts >= 2 {
            placements.extend(std::iter::repeat_n(Placement::Several, several));
        }
        placements.resize(n, Placement::One);
        placements.shuffle(rng);
    }

    let mut user_ids = HashSet::with_capacity(n);
    let mut members: Vec<Vec<UserKey>> = vec![Vec::new(); n_depts];
    let mut primary_of: HashMap<UserKey, Option<usize>> = HashMap::with_capacity(n);
    let mut active = Vec::with_capacity(n);
    for i in 0..n {
        let key = tenant.next_user_key;
        tenant.next_user_key += 1;
        let user_id = fresh_user_id(rng, &mut user_ids);
        let mut u = random_user(
            rng,
            key,
            user_id,
            &config.email_domain,
            config.custom_attr_share,
        );
        u.is_tenant_manager = i == 0;
        match statuses[i] {
            Status::Active => {}
            Status::Frozen => u.status.frozen = true,
            Status::Unjoined => {
                u.status.unjoin = true;
                u.status.activated = false;
            }
            Status::Exited => u.status.exited = true,
            Status::Resigned => {
                u.status.resigned = true;
                u.status.activated = false;
            }
        }
        if statuses[i] != Status::Resigned {
            let depts: Vec<Option<usize>> = match placements[i] {
                Placement::Root => vec![None],
                Placement::One => vec![Some(rng.random_range(0..n_depts))],
                Placement::Several => {
                    let count = if n_depts >= 3 && rng.random_bool(0.3) {
                        3
                    } else {
                        2
                    };
                    rand::seq::index::sample(rng, n_depts, count)
                        .into_iter()
                        .map(Some)
                        .collect()
                }
            };
            let len = depts.len() as i64;
            u.memberships = depts
                .iter()
                .enumerate()
                .map(|(pos, d)| Membership {
                    department: d
                        .map_or_else(|| ROOT_DEPARTMENT_ID.to_owned(), |d| tree.ids[d].clone()),
                    user_order: rng.random_range(0..10) * 10,
                    department_order: (len - pos as i64) * 100,
                    primary: pos == 0,
                })
                .collect();
            for d in depts.iter().flatten() {
                members[*d].push(key);
            }
            primary_of.insert(key, depts[0]);
            active.push(key);
        }
        tenant.users.insert(key, u);
    }

    assign_department_leaders(config, rng, tenant, tree, &members, &mut primary_of);
    assign_user_leaders(tenant, tree, &primary_of);
    active
}

/// Main leaders are distinct members whose primary department becomes the one they lead,
/// so the reporting lines derived from the tree cannot form a cycle.
fn assign_department_leaders(
    config: &GenerateConfig,
    rng: &mut ChaCha8Rng,
    tenant: &mut Tenant,
    tree: &Tree,
    members: &[Vec<UserKey>],
    primary_of: &mut HashMap<UserKey, Option<usize>>,
) {
    let mut main_leaders: HashSet<UserKey> = HashSet::new();
    for (d, list) in members.iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        let start = rng.random_range(0..list.len());
        let Some(main) = (0..list.len())
            .map(|i| list[(start + i) % list.len()])
            .find(|k| !main_leaders.contains(k))
        else {
            continue;
        };
        main_leaders.insert(main);
        primary_of.insert(main, Some(d));
        if let Some(u) = tenant.users.get_mut(&main) {
            for m in &mut u.memberships {
                m.primary = m.department == tree.ids[d];
            }
        }
        let mut leaders = vec![(1, main)];
        if list.len() >= 2
            && rng.random_bool(config.deputy_leader_share.clamp(0.0, 1.0))
            && let Some(&deputy) = list.choose(rng).filter(|k| **k != main)
        {
            leaders.push((2, deputy));
        }
        if let Some(rec) = tenant.departments.get_mut(&tree.ids[d]) {
            rec.leaders = leaders;
        }
    }
}

/// A user's leader is the main leader of the nearest department, from the primary one
/// upwards, that someone else leads. Users directly under the root report to nobody.
fn assign_user_leaders(
    tenant: &mut Tenant,
    tree: &Tree,
    primary_of: &HashMap<UserKey, Option<usize>>,
) {
    let main_leader: Vec<Option<UserKey>> = tree
        .ids
        .iter()
        .map(|id| tenant.departments.get(id).and_then(|d| d.main_leader()))
        .collect();
    for (key, primary) in primary_of {
        let mut cur = *primary;
        let mut leader = None;
        while let Some(d) = cur {
            if let Some(l) = main_leader[d].filter(|l| l != key) {
                leader = Some(l);
                break;
            }
            cur = tree.parent[d];
        }
        if let Some(u) = tenant.users.get_mut(key) {
            u.leader = leader;
        }
    }
}

/// HRBPs: any active user (they need not be members).
fn assign_hrbps(
    config: &GenerateConfig,
    rng: &mut ChaCha8Rng,
    tenant: &mut Tenant,
    tree: &Tree,
    active: &[UserKey],
) {
    for id in &tree.ids {
        if rng.random_bool(config.hrbp_share.clamp(0.0, 1.0))
            && let (Some(rec), Some(k)) = (tenant.departments.get_mut(id), active.choose(rng))
        {
            rec.hrbps = vec![*k];
        }
    }
}

fn generate_groups(
    config: &GenerateConfig,
    rng: &mut ChaCha8Rng,
    tenant: &mut Tenant,
    tree: &Tree,
    active: &[UserKey],
) {
    let dynamic = share_of(config.groups, config.dynamic_group_share);
    let mut used: HashMap<&str, usize> = HashMap::new();
    for g in 0..config.groups {
        let kind = if g >= config.groups - dynamic {
            GroupKind::Dynamic
        } else {
            GroupKind::Normal
        };
        let &(base, description) = names::GROUP_NAMES
            .get(g % names::GROUP_NAMES.len())
            .unwrap_or(&("用户组", ""));
        let n = used.entry(base).or_insert(0);
        *n += 1;
        let name = if *n == 1 {
            base.to_owned()
        } else {
            format!("{base} {n}")
        };
        let mut users: Vec<UserKey> = if active.is_empty() {
            Vec::new()
        } else {
            let count = rng.random_range(1..=active.len().min(30));
            rand::seq::index::sample(rng, active.len(), count)
                .into_iter()
                .map(|i| active[i])
                .collect()
        };
        users.sort_unstable();
        let departments =
            if kind == GroupKind::Normal && !tree.ids.is_empty() && rng.random_bool(0.5) {
                let count = rng.random_range(1..=tree.ids.len().min(3));
                let mut d: Vec<String> = rand::seq::index::sample(rng, tree.ids.len(), count)
                    .into_iter()
                    .map(|i| tree.ids[i].clone())
                    .collect();
                d.sort();
                d
            } else {
                Vec::new()
            };
        let serial = tenant.next_serial();
        let id = format!("g{}", 100_000 + serial);
        tenant.groups.insert(
            id.clone(),
            GroupRecord {
                id,
                group_id: format!("ug{:04}", g + 1),
                name,
                description: description.to_owned(),
                kind,
                users,
                departments,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::is_valid_department_id;
    use feishu::ids::IdTypes;
    use std::collections::BTreeSet;

    type Snapshot<'a> = (
        &'a str,
        &'a std::collections::BTreeMap<String, DepartmentRecord>,
        &'a std::collections::BTreeMap<UserKey, UserRecord>,
        &'a std::collections::BTreeMap<String, GroupRecord>,
        UserKey,
        u64,
    );

    fn snapshot(t: &Tenant) -> Snapshot<'_> {
        (
            &t.tenant_key,
            &t.departments,
            &t.users,
            &t.groups,
            t.next_user_key,
            t.next_serial,
        )
    }

    fn app() -> AppRecord {
        AppRecord::new("cli_generate00000001", "secret")
    }

    fn assert_healthy(t: &Tenant) {
        let bad = t.invariant_violations();
        assert!(bad.is_empty(), "{:#?}", &bad[..bad.len().min(20)]);
    }

    #[test]
    fn same_seed_same_tenant_other_seed_other_tenant() {
        let config = GenerateConfig::default();
        let a = generate(&config, vec![app()]);
        let b = generate(&config, vec![app()]);
        assert_eq!(snapshot(&a), snapshot(&b));
        let c = generate(
            &GenerateConfig {
                seed: 2,
                ..config.clone()
            },
            vec![app()],
        );
        assert_ne!(a.tenant_key, c.tenant_key);
        assert_ne!(a.users, c.users);
        assert_ne!(a.departments, c.departments);
    }

    #[test]
    fn default_tenant_has_the_configured_shape() {
        let t = generate(&GenerateConfig::default(), vec![app()]);
        assert_healthy(&t);
        assert_eq!(t.users.len(), 200);
        assert_eq!(t.departments.len(), 20);
        assert_eq!(t.groups.len(), 5);
        assert_eq!(t.apps.len(), 1);
        assert!(t.tenant_key.len() == 16 && t.tenant_key.chars().all(|c| c.is_ascii_hexdigit()));

        let count = |f: fn(&UserRecord) -> bool| t.users.values().filter(|u| f(u)).count();
        assert_eq!(count(|u| u.status.resigned), 6);
        assert_eq!(count(|u| u.status.frozen), 4);
        assert_eq!(count(|u| u.status.unjoin && !u.status.activated), 2);
        assert_eq!(count(|u| u.is_tenant_manager), 1);
        let several = count(|u| u.memberships.len() >= 2);
        assert!((15..=20).contains(&several), "{several}");
        let at_root = count(|u| {
            u.memberships.len() == 1 && u.memberships[0].department == ROOT_DEPARTMENT_ID
        });
        assert!((1..=4).contains(&at_root), "{at_root}");
        assert!(count(|u| u.status.resigned && !u.memberships.is_empty()) == 0);
        assert!(count(|u| !u.custom_attrs.is_empty()) > 20);
        let with_leader = count(|u| u.leader.is_some());
        assert!(with_leader > 150, "{with_leader}");

        // Every depth down to max_depth, and no deeper.
        let depths: BTreeSet<usize> = t.departments.keys().map(|id| t.depth(id)).collect();
        assert_eq!(depths, (1..=4).collect());
        for d in t.departments.values() {
            assert!(
                is_valid_department_id(&d.department_id),
                "{}",
                d.department_id
            );
            assert!(d.department_id.starts_with('D'));
            assert!(d.open_department_id.starts_with("od-") && d.open_department_id.len() == 35);
            assert!(d.i18n_name.zh_cn.as_deref() == Some(d.name.as_str()));
            assert!(d.i18n_name.en_us.as_deref().is_some_and(|e| e.is_ascii()));
            assert!(d.chat_id.as_deref().is_none_or(|c| c.starts_with("oc_")));
            if let Some(main) = d.main_leader() {
                assert_eq!(
                    t.users[&main]
                        .memberships
                        .iter()
                        .find(|m| m.primary)
                        .map(|m| &m.department),
                    Some(&d.open_department_id),
                    "a main leader's primary department is the one they lead"
                );
            }
        }
        assert!(
            t.departments
                .values()
                .filter(|d| !d.leaders.is_empty())
                .count()
                >= 15
        );
        assert!(t.departments.values().any(|d| d.leaders.len() == 2));
        assert!(t.departments.values().any(|d| !d.hrbps.is_empty()));
        let names: HashSet<&str> = t.departments.values().map(|d| d.name.as_str()).collect();
        assert_eq!(names.len(), 20);

        for u in t.users.values() {
            let email = u.email.as_deref().unwrap_or_default();
            assert!(
                email.ends_with("@example.com") && email.is_ascii(),
                "{email}"
            );
            assert_eq!(email, email.to_ascii_lowercase());
            let mobile = u.mobile.as_deref().unwrap_or_default();
            assert!(
                mobile.starts_with("+861")
                    && mobile.len() == 14
                    && mobile[1..].bytes().all(|b| b.is_ascii_digit()),
                "{mobile}"
            );
            assert!(u.user_id.len() == 8 && u.user_id.bytes().all(|b| ALNUM.contains(&b)));
            assert!(!u.name.is_ascii());
            assert!(u.leader != Some(u.key));
        }

        let dynamic: Vec<&GroupRecord> = t
            .groups
            .values()
            .filter(|g| g.kind == GroupKind::Dynamic)
            .collect();
        assert_eq!(dynamic.len(), 1);
        assert!(t.groups.values().all(|g| !g.users.is_empty()));
    }

    #[test]
    fn generated_tenant_renders_through_the_api_model() {
        let t = generate(&GenerateConfig::default(), vec![app()]);
        let app = &t.apps["cli_generate00000001"];
        let u = t.users.values().find(|u| u.memberships.len() >= 2).unwrap();
        let user = t.render_user(app, u.key, IdTypes::OPEN, false).unwrap();
        assert_eq!(
            user.department_ids.as_ref().unwrap().len(),
            u.memberships.len()
        );
        assert_eq!(
            user.primary_department(),
            u.memberships
                .iter()
                .find(|m| m.primary)
                .map(|m| m.department.as_str())
        );
        let top = &t.children(ROOT_DEPARTMENT_ID)[0];
        let member_count = t
            .render_department(app, top, IdTypes::OPEN)
            .unwrap()
            .member_count
            .unwrap();
        assert!(member_count > 0);
    }

    #[test]
    fn small_and_degenerate_configs_work() {
        let flat = generate(
            &GenerateConfig {
                departments: 0,
                users: 10,
                groups: 2,
                ..GenerateConfig::default()
            },
            Vec::new(),
        );
        assert_healthy(&flat);
        assert!(
            flat.users
                .values()
                .filter(|u| !u.status.resigned)
                .all(|u| u.memberships[0].department == ROOT_DEPARTMENT_ID)
        );

        let shallow = generate(
            &GenerateConfig {
                departments: 3,
                max_depth: 6,
                users: 30,
                tenant_key: Some("736588c9260f175c".into()),
                ..GenerateConfig::default()
            },
            Vec::new(),
        );
        assert_healthy(&shallow);
        assert_eq!(shallow.tenant_key, "736588c9260f175c");
        let deepest = shallow.departments.keys().map(|id| shallow.depth(id)).max();
        assert_eq!(deepest, Some(3), "a chain as deep as the departments allow");

        let empty = generate(
            &GenerateConfig {
                users: 0,
                groups: 3,
                ..GenerateConfig::default()
            },
            Vec::new(),
        );
        assert_healthy(&empty);
        assert!(empty.users.is_empty());
    }

    #[test]
    fn a_hundred_thousand_users() {
        let config = GenerateConfig {
            users: 100_000,
            departments: 2_000,
            max_depth: 8,
            groups: 50,
            ..GenerateConfig::default()
        };
        let t = generate(&config, vec![app()]);
        assert_eq!(t.users.len(), 100_000);
        assert_eq!(t.departments.len(), 2_000);
        assert_eq!(t.groups.len(), 50);
        assert_eq!(
            t.users.values().filter(|u| u.status.resigned).count(),
            3_000
        );
        assert_eq!(t.active_user_count(), 97_000);
        let deepest = t.departments.keys().map(|id| t.depth(id)).max();
        assert_eq!(deepest, Some(8));
        assert_healthy(&t);
    }
}
