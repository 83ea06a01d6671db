//! The directory comparison: does the store hold what a Feishu snapshot says? Object by
//! object, in Feishu ids. Only what the snapshot knows is compared — an omitted field, an
//! unknown membership list or a reference to an object the store does not hold live is not a
//! difference — and leavers count as what the lookup said: a resigned user kept as a
//! detached, resigned record equals its absence from the listing; a failed lookup is unknown.
//!
//! An empty result means equal. References inside the store are shown by their Feishu ids
//! (orgsync ids only when the store has no sync relation for them).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use feishu::model as fs;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::merge;
use crate::model::{
    Department, ExternalRef, Group, GroupMember, LeaderKind, ObjectKind, User, UserStatus,
};
use crate::snapshot::{LeaverCheck, ROOT, Snapshot};
use crate::store::ConnectionState;

/// One way the store differs from Feishu.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "difference", rename_all = "snake_case")]
pub enum Difference {
    /// In Feishu, not live in the store.
    MissingInStore {
        kind: ObjectKind,
        external_id: String,
        name: Option<String>,
    },
    /// Live in the store, absent from Feishu (or out of the app's scope).
    ExtraInStore {
        kind: ObjectKind,
        external_id: String,
        object_id: String,
        name: Option<String>,
    },
    /// A field both sides know, with different values.
    FieldDiffers {
        kind: ObjectKind,
        external_id: String,
        field: String,
        store: Value,
        feishu: Value,
    },
    StatusDiffers {
        external_id: String,
        store: UserStatus,
        feishu: UserStatus,
    },
    /// A user's departments (`"0"` = directly under the root), sorted.
    MembershipDiffers {
        external_id: String,
        store: Vec<String>,
        feishu: Vec<String>,
    },
    /// Members Feishu lists that the store lacks, and (for complete lists) the reverse.
    GroupMembersDiffer {
        external_id: String,
        missing: Vec<String>,
        extra: Vec<String>,
    },
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let named = |f: &mut fmt::Formatter<'_>, name: &Option<String>| match name {
            Some(n) => write!(f, " ({n})"),
            None => Ok(()),
        };
        match self {
            Self::MissingInStore {
                kind,
                external_id,
                name,
            } => {
                write!(f, "{} {external_id}", kind.as_str())?;
                named(f, name)?;
                f.write_str(": in Feishu, missing in the store")
            }
            Self::ExtraInStore {
                kind,
                external_id,
                object_id,
                name,
            } => {
                write!(f, "{} {external_id}", kind.as_str())?;
                named(f, name)?;
                write!(f, ": in the store ({object_id}), not in Feishu")
            }
            Self::FieldDiffers {
                kind,
                external_id,
                field,
                store,
                feishu,
            } => write!(
                f,
                "{} {external_id}: {field} differs: store {store}, Feishu {feishu}",
                kind.as_str()
            ),
            Self::StatusDiffers {
                external_id,
                store,
                feishu,
            } => write!(
                f,
                "user {external_id}: status differs: store {}, Feishu {}",
                store.as_str(),
                feishu.as_str()
            ),
            Self::MembershipDiffers {
                external_id,
                store,
                feishu,
            } => write!(
                f,
                "user {external_id}: departments differ: store [{}], Feishu [{}]",
                store.join(", "),
                feishu.join(", ")
            ),
            Self::GroupMembersDiffer {
                external_id,
                missing,
                extra,
            } => write!(
                f,
                "group {external_id}: members differ: missing in the store [{}], extra in the store [{}]",
                missing.join(", "),
                extra.join(", ")
            ),
        }
    }
}

/// Compares a snapshot with the stored state of its connection. Empty = equal.
pub fn compare(snapshot: &Snapshot, current: &ConnectionState) -> Vec<Difference> {
    let store = View::build(current);
    let mut out = Vec::new();
    compare_departments(snapshot, &store, &mut out);
    compare_users(snapshot, &store, &mut out);
    compare_groups(snapshot, &store, &mut out);
    out
}

// ---- the store in Feishu ids ---------------------------------------------------------------

struct Side<'a, T> {
    /// Feishu id → relation and object (tombstones included).
    by_external: HashMap<&'a str, (&'a ExternalRef, &'a T)>,
    /// orgsync id → Feishu id.
    external_of: HashMap<&'a str, &'a str>,
    /// Feishu ids in the store's order.
    order: Vec<&'a str>,
}

impl<'a, T> Side<'a, T> {
    fn build(
        objects: &'a [T],
        refs: &'a [ExternalRef],
        kind: ObjectKind,
        id: fn(&T) -> &str,
    ) -> Self {
        let by_id: HashMap<&str, &T> = objects.iter().map(|o| (id(o), o)).collect();
        let mut side = Self {
            by_external: HashMap::new(),
            external_of: HashMap::new(),
            order: Vec::new(),
        };
        for r in refs.iter().filter(|r| r.kind == kind) {
            if let Some(o) = by_id.get(r.object_id.as_str()) {
                side.external_of
                    .insert(r.object_id.as_str(), r.external_id.as_str());
                if side
                    .by_external
                    .insert(r.external_id.as_str(), (r, *o))
                    .is_none()
                {
                    side.order.push(r.external_id.as_str());
                }
            }
        }
        side
    }

    fn name_of(&self, id: &str) -> String {
        self.external_of
            .get(id)
            .map_or_else(|| id.to_owned(), |e| (*e).to_owned())
    }
}

struct View<'a> {
    users: Side<'a, User>,
    departments: Side<'a, Department>,
    groups: Side<'a, Group>,
}

impl<'a> View<'a> {
    fn build(state: &'a ConnectionState) -> Self {
        Self {
            users: Side::build(&state.users, &state.refs, ObjectKind::User, |u| &u.id.0),
            departments: Side::build(
                &state.departments,
                &state.refs,
                ObjectKind::Department,
                |d| &d.id.0,
            ),
            groups: Side::build(&state.groups, &state.refs, ObjectKind::Group, |g| &g.id.0),
        }
    }

    fn live_user(&self, ext: &str) -> Option<(&'a ExternalRef, &'a User)> {
        self.users
            .by_external
            .get(ext)
            .copied()
            .filter(|(_, u)| u.deleted_at.is_none())
    }

    fn live_department(&self, ext: &str) -> Option<(&'a ExternalRef, &'a Department)> {
        self.departments
            .by_external
            .get(ext)
            .copied()
            .filter(|(_, d)| d.deleted_at.is_none())
    }

    fn live_group(&self, ext: &str) -> Option<(&'a ExternalRef, &'a Group)> {
        self.groups
            .by_external
            .get(ext)
            .copied()
            .filter(|(_, g)| g.deleted_at.is_none())
    }
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Pushes a `FieldDiffers` when Feishu states the field and the values differ.
fn field<T: PartialEq + Serialize>(
    out: &mut Vec<Difference>,
    kind: ObjectKind,
    ext: &str,
    name: &str,
    store: &Option<T>,
    feishu: &Option<T>,
) {
    if feishu.is_some() && store != feishu {
        out.push(Difference::FieldDiffers {
            kind,
            external_id: ext.to_owned(),
            field: name.to_owned(),
            store: json(store),
            feishu: json(feishu),
        });
    }
}

fn identifier(
    out: &mut Vec<Difference>,
    kind: ObjectKind,
    ext: &str,
    name: &str,
    store: Option<&String>,
    feishu: Option<&String>,
) {
    // An empty id from Feishu is "no permission", never a value (see `merge_ref`).
    let feishu = feishu.filter(|s| !s.is_empty());
    if feishu.is_some() && store != feishu {
        out.push(Difference::FieldDiffers {
            kind,
            external_id: ext.to_owned(),
            field: name.to_owned(),
            store: json(&store),
            feishu: json(&feishu),
        });
    }
}

// ---- departments -------------------------------------------------------------------------

fn compare_departments(snapshot: &Snapshot, store: &View<'_>, out: &mut Vec<Difference>) {
    const KIND: ObjectKind = ObjectKind::Department;
    let present: HashSet<&str> = snapshot
        .departments
        .iter()
        .filter(|(_, d)| !d.is_deleted())
        .map(|(k, _)| k.as_str())
        .collect();
    for (ext, f) in snapshot.departments.iter().filter(|(_, d)| !d.is_deleted()) {
        let Some((r, d)) = store.live_department(ext) else {
            out.push(Difference::MissingInStore {
                kind: KIND,
                external_id: ext.clone(),
                name: f.name.clone(),
            });
            continue;
        };
        field(out, KIND, ext, "name", &d.name, &f.name);
        field(
            out,
            KIND,
            ext,
            "i18n_name",
            &d.i18n_name,
            &f.i18n_name.as_ref().map(merge::i18n_name),
        );
        field(out, KIND, ext, "order", &d.order, &f.order);
        field(out, KIND, ext, "chat_id", &d.chat_id, &f.chat_id);
        identifier(
            out,
            KIND,
            ext,
            "department_id",
            r.custom_id.as_ref(),
            f.department_id.as_ref(),
        );

        let store_parent = d
            .parent_id
            .as_ref()
            .map(|p| store.departments.name_of(&p.0));
        let feishu_parent = match f.parent_department_id.as_deref() {
            None => None,
            Some(ROOT) | Some("") => Some(None),
            Some(p) if store.live_department(p).is_some() => Some(Some(p.to_owned())),
            // A parent the store does not hold cannot be referenced: not comparable.
            Some(_) => None,
        };
        if let Some(expected) = feishu_parent
            && expected != store_parent
        {
            out.push(Difference::FieldDiffers {
                kind: KIND,
                external_id: ext.clone(),
                field: "parent".to_owned(),
                store: json(&store_parent.unwrap_or_else(|| ROOT.to_owned())),
                feishu: json(&expected.unwrap_or_else(|| ROOT.to_owned())),
            });
        }

        let show = |kind: LeaderKind, who: String| match kind {
            LeaderKind::Main => format!("main:{who}"),
            LeaderKind::Deputy => format!("deputy:{who}"),
        };
        let store_leaders: Vec<(LeaderKind, String)> = d
            .leaders
            .iter()
            .map(|l| (l.kind, store.users.name_of(&l.user_id.0)))
            .collect();
        let expected: Option<(Vec<(LeaderKind, String)>, bool)> = if let Some(ls) = &f.leaders {
            let mut seen = HashSet::new();
            let list = ls
                .iter()
                .filter_map(|l| {
                    let kind = match l.leader_type {
                        Some(1) => LeaderKind::Main,
                        Some(2) => LeaderKind::Deputy,
                        _ => return None,
                    };
                    let who = l.leader_id.as_deref().filter(|s| !s.is_empty())?;
                    store.live_user(who)?;
                    seen.insert(who).then(|| (kind, who.to_owned()))
                })
                .collect();
            Some((list, false))
        } else {
            match f.leader_user_id.as_deref() {
                None => None,
                Some("") => Some((Vec::new(), true)),
                Some(who) if store.live_user(who).is_some() => {
                    Some((vec![(LeaderKind::Main, who.to_owned())], true))
                }
                Some(_) => None,
            }
        };
        if let Some((expected, main_only)) = expected {
            let pick = |ls: &[(LeaderKind, String)]| -> BTreeSet<String> {
                ls.iter()
                    .filter(|(k, _)| !main_only || *k == LeaderKind::Main)
                    .map(|(k, w)| show(*k, w.clone()))
                    .collect()
            };
            let (s, e) = (pick(&store_leaders), pick(&expected));
            if s != e {
                out.push(Difference::FieldDiffers {
                    kind: KIND,
                    external_id: ext.clone(),
                    field: if main_only { "leader" } else { "leaders" }.to_owned(),
                    store: json(&s),
                    feishu: json(&e),
                });
            }
        }
    }
    for ext in &store.departments.order {
        if present.contains(ext) {
            continue;
        }
        if let Some((_, d)) = store.live_department(ext) {
            out.push(Difference::ExtraInStore {
                kind: KIND,
                external_id: (*ext).to_owned(),
                object_id: d.id.0.clone(),
                name: d.name.clone(),
            });
        }
    }
}

// ---- users -------------------------------------------------------------------------------

fn compare_users(snapshot: &Snapshot, store: &View<'_>, out: &mut Vec<Difference>) {
    let authoritative = snapshot.completeness.users;
    for (ext, su) in &snapshot.users {
        match store.live_user(ext) {
            Some((r, u)) => {
                let listing = authoritative.then_some(su.listed_in.as_slice());
                compare_user(ext, &su.user, listing, false, r, u, store, out);
            }
            None => out.push(Difference::MissingInStore {
                kind: ObjectKind::User,
                external_id: ext.clone(),
                name: su.user.name.clone(),
            }),
        }
    }
    for (ext, check) in &snapshot.leavers {
        if snapshot.lists_user(ext) {
            continue;
        }
        let live = store.live_user(ext);
        match (check, live) {
            // Absent from the listing and gone from the store: equal.
            (_, None) => {}
            (LeaverCheck::Resigned { user }, Some((r, u))) => {
                let listing = authoritative.then_some(&[][..]);
                compare_user(ext, user, listing, true, r, u, store, out);
            }
            (LeaverCheck::Present { user }, Some((r, u))) => {
                let listing = authoritative.then_some(&[][..]);
                compare_user(ext, user, listing, false, r, u, store, out);
            }
            (LeaverCheck::OutOfScope, Some((_, u))) => out.push(Difference::ExtraInStore {
                kind: ObjectKind::User,
                external_id: ext.clone(),
                object_id: u.id.0.clone(),
                name: u.profile.name.clone(),
            }),
            // Unknown: the lookup failed.
            (LeaverCheck::Failed { .. }, Some(_)) => {}
        }
    }
    for ext in &store.users.order {
        if snapshot.users.contains_key(*ext) || snapshot.leavers.contains_key(*ext) {
            continue;
        }
        // A leaver the store already holds as resigned and detached is what its absence from
        // every listing means (resigned users are never listed, nor looked up again).
        if let Some((_, u)) = store.live_user(ext).filter(|(_, u)| {
            !(u.status == UserStatus::Resigned && u.departments.is_empty() && !u.in_root)
        }) {
            out.push(Difference::ExtraInStore {
                kind: ObjectKind::User,
                external_id: (*ext).to_owned(),
                object_id: u.id.0.clone(),
                name: u.profile.name.clone(),
            });
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn compare_user(
    ext: &str,
    f: &fs::User,
    listing: Option<&[String]>,
    resigned_by_lookup: bool,
    r: &ExternalRef,
    u: &User,
    store: &View<'_>,
    out: &mut Vec<Difference>,
) {
    const KIND: ObjectKind = ObjectKind::User;
    let p = &u.profile;
    field(out, KIND, ext, "name", &p.name, &f.name);
    field(out, KIND, ext, "en_name", &p.en_name, &f.en_name);
    field(out, KIND, ext, "nickname", &p.nickname, &f.nickname);
    field(out, KIND, ext, "email", &p.email, &f.email);
    field(
        out,
        KIND,
        ext,
        "enterprise_email",
        &p.enterprise_email,
        &f.enterprise_email,
    );
    field(out, KIND, ext, "mobile", &p.mobile, &f.mobile);
    field(out, KIND, ext, "gender", &p.gender, &f.gender);
    let avatar = f
        .avatar
        .as_ref()
        .and_then(merge::avatar_url)
        .map(str::to_owned);
    field(out, KIND, ext, "avatar", &p.avatar_url, &avatar);
    field(out, KIND, ext, "city", &p.city, &f.city);
    field(out, KIND, ext, "country", &p.country, &f.country);
    field(
        out,
        KIND,
        ext,
        "work_station",
        &p.work_station,
        &f.work_station,
    );
    field(out, KIND, ext, "job_title", &p.job_title, &f.job_title);
    field(
        out,
        KIND,
        ext,
        "employee_no",
        &p.employee_no,
        &f.employee_no,
    );
    field(
        out,
        KIND,
        ext,
        "employee_type",
        &p.employee_type,
        &f.employee_type,
    );
    field(out, KIND, ext, "join_time", &p.join_time, &f.join_time);
    field(
        out,
        KIND,
        ext,
        "is_tenant_manager",
        &p.is_tenant_manager,
        &f.is_tenant_manager,
    );
    let attrs = f.custom_attrs.as_ref().map(json);
    field(out, KIND, ext, "custom_attrs", &p.custom_attrs, &attrs);
    identifier(
        out,
        KIND,
        ext,
        "union_id",
        r.union_id.as_ref(),
        f.union_id.as_ref(),
    );
    identifier(
        out,
        KIND,
        ext,
        "user_id",
        r.custom_id.as_ref(),
        f.user_id.as_ref(),
    );

    let status = if resigned_by_lookup {
        Some(UserStatus::Resigned)
    } else {
        merge::status_of(f)
    };
    match status {
        Some(s) if s != u.status => out.push(Difference::StatusDiffers {
            external_id: ext.to_owned(),
            store: u.status,
            feishu: s,
        }),
        None if f.is_frozen() == Some(false) && u.status == UserStatus::Frozen => {
            out.push(Difference::StatusDiffers {
                external_id: ext.to_owned(),
                store: u.status,
                feishu: UserStatus::Active,
            })
        }
        _ => {}
    }

    match f.leader_user_id.as_deref() {
        None => {}
        Some(who) => {
            let expected = match who {
                "" => Some(None),
                w if store.live_user(w).is_some() => Some(Some(w.to_owned())),
                _ => None,
            };
            let actual = u.manager_id.as_ref().map(|m| store.users.name_of(&m.0));
            if let Some(expected) = expected
                && expected != actual
            {
                out.push(Difference::FieldDiffers {
                    kind: KIND,
                    external_id: ext.to_owned(),
                    field: "manager".to_owned(),
                    store: json(&actual),
                    feishu: json(&expected),
                });
            }
        }
    }

    // Memberships: only departments the store holds live can be compared. A resigned user
    // has none; with the status unknown the stored one stands (see `merge_user`).
    let resigned = status.unwrap_or(u.status) == UserStatus::Resigned;
    let stated = merge::stated_departments(f);
    let expected: Option<Vec<&str>> = if resigned {
        Some(Vec::new())
    } else if let Some(ids) = &stated {
        Some(ids.clone())
    } else {
        listing.map(|l| {
            l.iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect()
        })
    };
    let Some(expected) = expected else { return };
    let expected: Vec<&str> = expected
        .into_iter()
        .filter(|od| *od == ROOT || store.live_department(od).is_some())
        .collect();
    let expected_set: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    let store_name = |m: &crate::model::Membership| store.departments.name_of(&m.department_id.0);
    let mut actual: BTreeSet<String> = u.departments.iter().map(store_name).collect();
    if u.in_root {
        actual.insert(ROOT.to_owned());
    }
    if actual != expected_set {
        out.push(Difference::MembershipDiffers {
            external_id: ext.to_owned(),
            store: actual.into_iter().collect(),
            feishu: expected_set.into_iter().collect(),
        });
        return;
    }
    if resigned {
        return;
    }
    let mut seen = HashSet::new();
    for o in f.orders.iter().flatten() {
        let Some(od) = o.department_id.as_deref() else {
            continue;
        };
        // The first order of a department counts (as in `merge_user`).
        if !seen.insert(od) || !expected.contains(&od) {
            continue;
        }
        let Some(m) = u.departments.iter().find(|m| store_name(m) == od) else {
            continue;
        };
        field(
            out,
            KIND,
            ext,
            &format!("user_order in {od}"),
            &m.user_order,
            &o.user_order,
        );
        field(
            out,
            KIND,
            ext,
            &format!("department_order in {od}"),
            &m.department_order,
            &o.department_order,
        );
    }
    if let Some(primary) = merge::stated_primary(f) {
        let members: Vec<&str> = expected.iter().copied().filter(|od| *od != ROOT).collect();
        let expected_primary = match primary {
            Some(od) => members.contains(&od).then(|| od.to_owned()),
            None => members.first().map(|od| (*od).to_owned()),
        };
        let actual_primary = u.departments.iter().find(|m| m.primary).map(store_name);
        if expected_primary != actual_primary {
            out.push(Difference::FieldDiffers {
                kind: KIND,
                external_id: ext.to_owned(),
                field: "primary_department".to_owned(),
                store: json(&actual_primary),
                feishu: json(&expected_primary),
            });
        }
    }
}

// ---- groups ------------------------------------------------------------------------------

fn compare_groups(snapshot: &Snapshot, store: &View<'_>, out: &mut Vec<Difference>) {
    const KIND: ObjectKind = ObjectKind::Group;
    for (ext, sg) in &snapshot.groups {
        let f = &sg.group;
        let Some((r, g)) = store.live_group(ext) else {
            out.push(Difference::MissingInStore {
                kind: KIND,
                external_id: ext.clone(),
                name: f.name.clone(),
            });
            continue;
        };
        field(out, KIND, ext, "name", &g.name, &f.name);
        field(
            out,
            KIND,
            ext,
            "description",
            &g.description,
            &f.description,
        );
        field(
            out,
            KIND,
            ext,
            "type",
            &Some(g.kind),
            &merge::group_kind(f.kind),
        );
        identifier(
            out,
            KIND,
            ext,
            "group_id",
            r.custom_id.as_ref(),
            f.group_id.as_ref(),
        );

        let expected: BTreeSet<String> = sg
            .users
            .iter()
            .filter(|u| store.live_user(u).is_some())
            .chain(
                sg.departments
                    .iter()
                    .filter(|d| store.live_department(d).is_some()),
            )
            .cloned()
            .collect();
        let actual: BTreeSet<String> = g
            .members
            .iter()
            .map(|m| match m {
                GroupMember::User(u) => store.users.name_of(&u.0),
                GroupMember::Department(d) => store.departments.name_of(&d.0),
            })
            .collect();
        let missing: Vec<String> = expected.difference(&actual).cloned().collect();
        let extra: Vec<String> = if sg.members_complete {
            actual.difference(&expected).cloned().collect()
        } else {
            Vec::new()
        };
        if !missing.is_empty() || !extra.is_empty() {
            out.push(Difference::GroupMembersDiffer {
                external_id: ext.clone(),
                missing,
                extra,
            });
        }
    }
    for ext in &store.groups.order {
        if snapshot.groups.contains_key(*ext) {
            continue;
        }
        if let Some((_, g)) = store.live_group(ext) {
            out.push(Difference::ExtraInStore {
                kind: KIND,
                external_id: (*ext).to_owned(),
                object_id: g.id.0.clone(),
                name: g.name.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::testing::*;
    use crate::snapshot::LeaverCheck;

    fn small() -> Snapshot {
        let mut boss = person("ou_boss", "Bea", &["od-a"]);
        boss.orders = Some(vec![fs::UserOrder {
            department_id: Some("od-a".into()),
            user_order: Some(7),
            department_order: None,
            is_primary_dept: Some(true),
        }]);
        let mut ann = person("ou_ann", "Ann", &["od-a", "od-b"]);
        ann.leader_user_id = Some("ou_boss".into());
        snapshot(
            vec![
                with_leader(dept("od-a", "0", "Eng"), "ou_boss"),
                dept("od-b", "od-a", "Backend"),
            ],
            vec![boss, ann, person("ou_root", "Ron", &["0"])],
            vec![group("g1", "Ops", &["ou_ann"], &["od-b"])],
        )
    }

    fn stored() -> ConnectionState {
        sync(&small(), &ConnectionState::default()).1
    }

    fn user_mut<'s>(state: &'s mut ConnectionState, open_id: &str) -> &'s mut User {
        let id = user_by(state, open_id).id.clone();
        state.users.iter_mut().find(|u| u.id == id).unwrap()
    }

    #[test]
    fn equal_after_an_import() {
        assert_eq!(compare(&small(), &stored()), vec![]);
    }

    #[test]
    fn every_kind_of_difference_is_reported_and_printable() {
        let snap = small();
        let mut state = stored();
        let a = department_by(&state, "od-a").id.clone();
        let b = department_by(&state, "od-b").id.clone();
        let ann = user_by(&state, "ou_ann").id.clone();
        let root = user_by(&state, "ou_root").id.clone();
        user_mut(&mut state, "ou_ann").profile.name = Some("Anne".into());
        // ann's membership of od-b goes with od-b's tombstone below: not comparable.
        user_mut(&mut state, "ou_ann")
            .departments
            .retain(|m| m.department_id == a);
        user_mut(&mut state, "ou_root").status = UserStatus::Frozen;
        user_mut(&mut state, "ou_boss").departments[0].user_order = Some(1);
        for r in &mut state.refs {
            if r.external_id == "ou_root" {
                r.union_id = Some("on_other".into());
            }
        }
        for d in &mut state.departments {
            if d.id == b {
                d.deleted_at = Some(1);
            }
        }
        for g in &mut state.groups {
            g.members = vec![
                GroupMember::User(ann.clone()),
                GroupMember::User(root.clone()),
            ];
        }
        // A stored user Feishu does not list (and nobody looked up).
        let gone = User {
            id: "u-gone".into(),
            ..user_by(&state, "ou_root").clone()
        };
        state.refs.push(ExternalRef {
            external_id: "ou_gone".into(),
            object_id: "u-gone".into(),
            ..ref_of(&state, ObjectKind::User, "ou_root").clone()
        });
        state.users.push(gone);

        let diff = compare(&snap, &state);
        let text: Vec<String> = diff.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "department od-b (Backend): in Feishu, missing in the store",
                "user ou_ann: name differs: store \"Anne\", Feishu \"Ann\"",
                "user ou_boss: user_order in od-a differs: store 1, Feishu 7",
                "user ou_root: union_id differs: store \"on_other\", Feishu \"on_root\"",
                "user ou_root: status differs: store frozen, Feishu active",
                "user ou_gone (Ron): in the store (u-gone), not in Feishu",
                "group g1: members differ: missing in the store [], extra in the store [ou_root]",
            ],
            "{diff:#?}"
        );
        // The membership of a tombstoned department is not comparable; the missing
        // department is reported instead.
        assert!(
            !diff
                .iter()
                .any(|d| matches!(d, Difference::MembershipDiffers { .. }))
        );
        assert_eq!(
            serde_json::to_value(&diff[4]).unwrap(),
            json!({"difference": "status_differs", "external_id": "ou_root",
                   "store": "frozen", "feishu": "active"})
        );
    }

    #[test]
    fn memberships_parents_leaders_and_managers_are_compared_in_feishu_ids() {
        let snap = small();
        let mut state = stored();
        let a = department_by(&state, "od-a").id.clone();
        let b = department_by(&state, "od-b").id.clone();
        user_mut(&mut state, "ou_ann")
            .departments
            .retain(|m| m.department_id == a);
        user_mut(&mut state, "ou_root").in_root = false;
        user_mut(&mut state, "ou_ann").manager_id = None;
        for d in &mut state.departments {
            if d.id == b {
                d.parent_id = None;
            }
            if d.id == a {
                d.leaders.clear();
            }
        }
        let text: Vec<String> = compare(&snap, &state)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            text,
            [
                "department od-a: leaders differs: store [], Feishu [\"main:ou_boss\"]",
                "department od-b: parent differs: store \"0\", Feishu \"od-a\"",
                "user ou_ann: manager differs: store null, Feishu \"ou_boss\"",
                "user ou_ann: departments differ: store [od-a], Feishu [od-a, od-b]",
                "user ou_root: departments differ: store [], Feishu [0]",
            ]
        );
    }

    #[test]
    fn unknown_fields_are_not_differences() {
        let mut snap = small();
        for su in snap.users.values_mut() {
            su.user = fs::User {
                open_id: su.user.open_id.clone(),
                ..Default::default()
            };
        }
        snap.completeness.users = false; // listings not authoritative either
        for d in snap.departments.values_mut() {
            *d = fs::Department::default();
        }
        let g = snap.groups.get_mut("g1").unwrap();
        g.group = fs::Group::default();
        g.users.clear();
        g.departments.clear();
        g.members_complete = false;
        let mut state = stored();
        user_mut(&mut state, "ou_ann").profile.name = Some("Anything".into());
        assert_eq!(compare(&snap, &state), vec![]);
    }

    #[test]
    fn leavers_compare_as_the_lookup_said() {
        let mut snap = small();
        let root = snap.users.remove("ou_root").unwrap().user;
        let mut resigned_root = root.clone();
        resigned_root.status = resigned();
        resigned_root.department_ids = None;
        snap.leavers.insert(
            "ou_root".into(),
            LeaverCheck::Resigned {
                user: Box::new(resigned_root),
            },
        );
        // Stored as it was: active and under the root.
        let state = stored();
        let diff: Vec<String> = compare(&snap, &state)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            diff,
            [
                "user ou_root: status differs: store active, Feishu resigned",
                "user ou_root: departments differ: store [0], Feishu []",
            ]
        );
        // Kept as a resigned, detached record: equal to its absence from the listing.
        let (_, after) = sync(&snap, &state);
        assert_eq!(user_by(&after, "ou_root").status, UserStatus::Resigned);
        assert_eq!(compare(&snap, &after), vec![]);

        // Out of scope and still live: extra. A failed lookup: unknown.
        snap.leavers
            .insert("ou_root".into(), LeaverCheck::OutOfScope);
        assert!(matches!(
            compare(&snap, &state).as_slice(),
            [Difference::ExtraInStore { external_id, .. }] if external_id == "ou_root"
        ));
        snap.leavers
            .insert("ou_root".into(), LeaverCheck::Failed { error: "x".into() });
        assert_eq!(compare(&snap, &state), vec![]);
        // Not looked up at all: extra.
        snap.leavers.clear();
        assert_eq!(compare(&snap, &state).len(), 1);
    }

    #[test]
    fn incomplete_member_lists_only_report_missing_members() {
        let mut snap = small();
        let g = snap.groups.get_mut("g1").unwrap();
        g.members_complete = false;
        g.users.clear();
        g.users.insert("ou_boss".into());
        let diff = compare(&snap, &stored());
        assert_eq!(
            diff,
            [Difference::GroupMembersDiffer {
                external_id: "g1".into(),
                missing: vec!["ou_boss".into()],
                extra: vec![],
            }]
        );
    }
}
