//! What entries need of departments besides their own rows: names (a person's `ou`) and
//! parents (`memberOf` by subtree, a department's path in `description`). A listener keeps
//! them while the store writes nothing that could change them ([`DirectoryStore::write_epoch`])
//! and for at most [`KEEP_FOR`], so a page of entries costs no read for them and a change
//! applied by this process shows at the next search (docs/ldap.md, "Searches"). What is kept
//! is bounded by the pools' departments (thousands of short rows), never by their people.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use directory::ids::{DepartmentId, PoolId};
use directory::store::{DirectoryStore, StoreError};

/// How long departments are kept when the store writes nothing: the bound on seeing a change
/// made by another process.
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

#[derive(Debug)]
struct Kept {
    epoch: u64,
    since: Instant,
    /// `None`: not live (deleted or unknown).
    pools: HashMap<PoolId, HashMap<DepartmentId, Option<Node>>>,
}

impl Default for Kept {
    fn default() -> Self {
        Self {
            epoch: 0,
            since: Instant::now(),
            pools: HashMap::new(),
        }
    }
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
        let mut out: Tree = HashMap::new();
        let mut missing: Vec<DepartmentId> = Vec::new();
        let mut wanted = ids;
        let mut read: HashMap<DepartmentId, Option<Node>> = HashMap::new();
        let mut dead: HashSet<DepartmentId> = HashSet::new();
        for _ in 0..MAX_DEPTH {
            missing.clear();
            {
                let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.epoch != epoch || kept.since.elapsed() >= KEEP_FOR {
                    *kept = Kept {
                        epoch,
                        since: Instant::now(),
                        pools: HashMap::new(),
                    };
                }
                let pool_kept = kept.pools.get(pool);
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
            // Kept only if nothing was written since the epoch they were read under.
            if kept.epoch == epoch && store.write_epoch() == epoch {
                kept.pools.entry(pool.clone()).or_default().extend(read);
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
