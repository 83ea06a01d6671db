//! What entries need of departments besides their own rows: names (a person's `ou`) and
//! parents (`memberOf` by subtree, a department's path in `description`). A listener keeps
//! them while this process's store writes nothing ([`DirectoryStore::write_epoch`]) and the
//! pool's change feed, asked at most once a second, has not moved (another process's
//! writes): a page of entries costs no read for them, a change applied by this process shows
//! at the next search and one applied by another within a second (docs/ldap.md,
//! "Searches"). What is kept is bounded by the pools' departments (thousands of short rows),
//! never by their people.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use directory::ids::{DepartmentId, PoolId};
use directory::store::{DirectoryStore, StoreError};

/// How long departments are kept before the pool's change feed is asked whether anything
/// changed (one point read): the bound on seeing a change made by another process.
const KEEP_FOR: Duration = Duration::from_secs(1);

/// The deepest tree walked up (Feishu allows far fewer levels); stops a cycle in bad data.
const MAX_DEPTH: usize = 64;

/// What is kept of one live department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: Option<String>,
    pub parent: Option<DepartmentId>,
}

/// The departments of one listener's searches.
#[derive(Debug, Default)]
pub struct Departments {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// The store's write epoch the pools were kept under.
    epoch: u64,
    pools: HashMap<PoolId, PoolKept>,
}

#[derive(Debug)]
struct PoolKept {
    /// The pool's last change-feed number when these were read: any change to a department
    /// moves it, whichever process wrote it.
    seq: i64,
    checked: Instant,
    /// `None`: not live (deleted or unknown).
    nodes: HashMap<DepartmentId, Option<Node>>,
}

/// The departments asked for and their ancestors, by id; deleted or unknown ones absent.
pub type Tree = HashMap<DepartmentId, Node>;

impl Departments {
    /// `ids` and all their ancestors: kept ones at once, the others read a level of the tree
    /// per statement.
    pub async fn with_ancestors(
        &self,
        store: &dyn DirectoryStore,
        pool: &PoolId,
        ids: Vec<DepartmentId>,
    ) -> Result<Tree, StoreError> {
        let epoch = store.write_epoch();
        let fresh = {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.epoch != epoch {
                *kept = Kept {
                    epoch,
                    pools: HashMap::new(),
                };
            }
            kept.pools
                .get(pool)
                .filter(|p| p.checked.elapsed() < KEEP_FOR)
                .map(|p| p.seq)
        };
        // Once a second at most: has the pool changed since (another process's writes)?
        // Read before the departments, so that a change after it shows at the next check.
        let seq = if let Some(seq) = fresh {
            seq
        } else {
            let Some(head) = store.feed_head(pool).await? else {
                return Ok(Tree::new());
            };
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.epoch == epoch {
                let entry = kept.pools.entry(pool.clone()).or_insert_with(|| PoolKept {
                    seq: head.last_seq,
                    checked: Instant::now(),
                    nodes: HashMap::new(),
                });
                if entry.seq != head.last_seq {
                    entry.nodes.clear();
                    entry.seq = head.last_seq;
                }
                entry.checked = Instant::now();
            }
            head.last_seq
        };
        let mut out: Tree = HashMap::new();
        let mut missing: Vec<DepartmentId> = Vec::new();
        let mut wanted = ids;
        let mut read: HashMap<DepartmentId, Option<Node>> = HashMap::new();
        let mut dead: HashSet<DepartmentId> = HashSet::new();
        for _ in 0..MAX_DEPTH {
            missing.clear();
            {
                let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
                let pool_kept = kept
                    .pools
                    .get(pool)
                    .filter(|_| kept.epoch == epoch)
                    .map(|p| &p.nodes);
                for id in wanted.drain(..) {
                    if out.contains_key(&id) || dead.contains(&id) {
                        continue;
                    }
                    match read.get(&id).or_else(|| pool_kept.and_then(|p| p.get(&id))) {
                        Some(Some(node)) => {
                            out.insert(id, node.clone());
                        }
                        Some(None) => {
                            dead.insert(id);
                        }
                        None => missing.push(id),
                    }
                }
            }
            // Parents of what was found that are not known yet.
            let parents: Vec<DepartmentId> = out
                .values()
                .filter_map(|n| n.parent.clone())
                .filter(|p| !out.contains_key(p) && !dead.contains(p))
                .collect();
            if missing.is_empty() && parents.is_empty() {
                break;
            }
            if !missing.is_empty() {
                missing.sort();
                missing.dedup();
                let found = store.get_departments(pool, &missing).await?;
                for id in &missing {
                    read.insert(id.clone(), None);
                }
                for d in found.into_iter().filter(|d| d.deleted_at.is_none()) {
                    read.insert(
                        d.id.clone(),
                        Some(Node {
                            name: d.name,
                            parent: d.parent_id,
                        }),
                    );
                }
            }
            wanted = missing.drain(..).chain(parents).collect();
        }
        if !read.is_empty() {
            let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            // Kept only if nothing was written since they were read under this epoch and
            // change number.
            let same = kept.epoch == epoch && store.write_epoch() == epoch;
            if let Some(entry) = kept.pools.get_mut(pool)
                && same
                && entry.seq == seq
            {
                entry.nodes.extend(read);
            }
        }
        Ok(out)
    }
}

/// `id`'s ancestors in `tree`, the root first (not `id` itself).
pub fn ancestors(tree: &Tree, id: &DepartmentId) -> Vec<DepartmentId> {
    let mut out = Vec::new();
    let mut at = tree.get(id).and_then(|n| n.parent.clone());
    while let Some(p) = at {
        if out.len() >= MAX_DEPTH || out.contains(&p) || &p == id {
            break;
        }
        at = tree.get(&p).and_then(|n| n.parent.clone());
        out.push(p);
    }
    out.reverse();
    out
}

/// `id`'s path of names from the top, `A / B / C` (a department without a name by its id).
pub fn path(tree: &Tree, id: &DepartmentId) -> Option<String> {
    let node = tree.get(id)?;
    let name = |d: &DepartmentId, n: &Node| n.name.clone().unwrap_or_else(|| d.0.clone());
    let mut names: Vec<String> = ancestors(tree, id)
        .iter()
        .filter_map(|a| tree.get(a).map(|n| name(a, n)))
        .collect();
    names.push(name(id, node));
    Some(names.join(" / "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, parent: Option<&str>) -> Node {
        Node {
            name: Some(name.into()),
            parent: parent.map(|p| DepartmentId(p.into())),
        }
    }

    #[test]
    fn paths_and_ancestors_run_from_the_top() {
        let mut tree = Tree::new();
        tree.insert(DepartmentId("a".into()), node("Acme R&D", None));
        tree.insert(DepartmentId("b".into()), node("Ops", Some("a")));
        tree.insert(DepartmentId("c".into()), node("On call", Some("b")));
        let c = DepartmentId("c".into());
        assert_eq!(
            ancestors(&tree, &c),
            vec![DepartmentId("a".into()), DepartmentId("b".into())]
        );
        assert_eq!(path(&tree, &c).as_deref(), Some("Acme R&D / Ops / On call"));
        assert_eq!(
            path(&tree, &DepartmentId("a".into())).as_deref(),
            Some("Acme R&D")
        );
        assert_eq!(path(&tree, &DepartmentId("x".into())), None);
    }

    #[test]
    fn a_cycle_in_bad_data_ends() {
        let mut tree = Tree::new();
        tree.insert(DepartmentId("a".into()), node("A", Some("b")));
        tree.insert(DepartmentId("b".into()), node("B", Some("a")));
        let a = DepartmentId("a".into());
        assert_eq!(ancestors(&tree, &a), vec![DepartmentId("b".into())]);
        assert_eq!(path(&tree, &a).as_deref(), Some("B / A"));
    }
}
