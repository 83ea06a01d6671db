//! The LDAP view driven by clients we did not write: Debian's `ldapsearch`, `ldapwhoami`,
//! `ldapcompare` and `ldapdelete` (OpenLDAP's libldap) against a listener over the real store,
//! after a real import from the emulator (docs/ldap.md).

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use directory::ids::{ConnectionId, PoolId};
use directory::model::{GroupMember, ObjectKind, UserStatus};
use directory::store::{KeyPage, UserQuery};
use ldap::server::{Limits, RunningLdap};
use ldap::session::{Settings, Shared};
use ldap3_proto::proto::LdapResultCode;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::api::{deliver_over_http, pool_and_connection, run_job};
use crate::serve_support::Served;
use crate::support::*;

struct View {
    s: Served,
    ldap: RunningLdap,
    pool: String,
    connection: String,
    callback: String,
    token: String,
    base: String,
}

impl View {
    /// The generated tenant, with `uid` the orgsync id (what most tests compare with the
    /// store).
    async fn start(backend: Backend) -> View {
        Self::start_with(
            backend,
            tenant(40, 6, 3, 17),
            json!({"login": "orgsync_id"}),
            5,
        )
        .await
    }

    /// A tenant imported, then the pool's LDAP settings saved through the API.
    /// `max_failures`: failed binds that lock a source out (low, so a test can reach it).
    async fn start_with(
        backend: Backend,
        tenant: emulator::tenant::Tenant,
        settings: serde_json::Value,
        max_failures: u32,
    ) -> View {
        let s = Served::start(backend, tenant).await;
        let (pool, connection) = pool_and_connection(&s, None).await;
        let (status, saved) = s
            .send(
                reqwest::Method::PUT,
                &format!("/api/v1/pools/{pool}/ldap-settings"),
                Some(&settings),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        let connection_id = connection["id"].as_str().unwrap().to_owned();
        let callback = connection["callback_url"].as_str().unwrap().to_owned();
        let job = run_job(&s, &connection_id, "import").await;
        assert_eq!(job["verdict"], "complete", "{job}");
        let token = credential(&s, &pool, "reader", &["ldap:search"]).await;
        let shared = Arc::new(Shared::new(
            s.store.clone(),
            s.key.clone(),
            Settings {
                bind_limits: ldap::limiter::BindLimits {
                    max_failures,
                    ..Default::default()
                },
                ..Default::default()
            },
        ));
        let ldap = RunningLdap::start("127.0.0.1:0".parse().unwrap(), shared, Limits::default())
            .await
            .unwrap();
        let base = format!("o={pool},dc=orgsync");
        View {
            s,
            ldap,
            pool,
            connection: connection_id,
            callback,
            token,
            base,
        }
    }

    fn url(&self) -> String {
        format!("ldap://{}", self.ldap.addr)
    }

    fn bind_dn(&self, name: &str) -> String {
        format!("cn={name},ou=services,{}", self.base)
    }

    /// Runs an OpenLDAP client tool bound as `reader`; (exit code, stdout, stderr).
    async fn tool(&self, tool: &str, args: &[&str]) -> (i32, String, String) {
        self.tool_as(tool, &self.bind_dn("reader"), &self.token, args)
            .await
    }

    /// The tool runs as a child process awaited by the runtime, which keeps serving the
    /// listener meanwhile (a blocking wait would stall a single-threaded test runtime).
    async fn tool_as(
        &self,
        tool: &str,
        dn: &str,
        pw: &str,
        args: &[&str],
    ) -> (i32, String, String) {
        let out = tokio::process::Command::new(tool)
            .args(["-x", "-H", &self.url(), "-D", dn, "-w", pw])
            .args(args)
            .env("LDAPTLS_REQCERT", "never")
            .output()
            .await
            .unwrap_or_else(|e| panic!("{tool} (Debian ldap-utils) could not run: {e}"));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The LDIF of an `ldapsearch -LLL` run (lines unwrapped) that must succeed.
    async fn ldif(&self, args: &[&str]) -> String {
        let mut full = vec!["-LLL", "-o", "ldif-wrap=no"];
        full.extend_from_slice(args);
        let (code, out, err) = self.tool("ldapsearch", &full).await;
        assert_eq!(code, 0, "ldapsearch {args:?}: {err}\n{out}");
        out
    }

    /// `dn:` lines of an `ldapsearch -LLL` run that must succeed.
    async fn search_dns(&self, args: &[&str]) -> Vec<String> {
        self.ldif(args)
            .await
            .lines()
            .filter_map(|l| l.strip_prefix("dn: "))
            .map(str::to_owned)
            .collect()
    }

    /// The orgsync id of an emulator user.
    async fn object_id(&self, key: emulator::tenant::UserKey) -> String {
        self.s
            .store
            .find_external(
                &ConnectionId(self.connection.clone()),
                ObjectKind::User,
                &open_id(key),
            )
            .await
            .unwrap()
            .unwrap()
            .object_id
    }

    /// Changes the emulator's tenant and delivers the events it emitted, as Feishu would.
    async fn change(
        &self,
        f: &dyn Fn(&mut emulator::tenant::Tenant) -> emulator::mutate::MutationResult,
    ) {
        let mark = self.s.emu.state().events.emitted().len();
        self.s.emu.state().mutate(f).unwrap();
        deliver_over_http(&self.s, &self.callback, APP_ID, ENCRYPT_KEY, mark).await;
    }

    fn person(&self, id: &str) -> String {
        format!("uid={id},ou=people,{}", self.base)
    }

    /// The DNs of every person, paged two at a time with `ldapsearch -E pr=2`; none twice.
    async fn people_two_per_page(&self) -> BTreeSet<String> {
        let people_base = format!("ou=people,{}", self.base);
        let dns = self
            .search_dns(&[
                "-E",
                "pr=2/noprompt",
                "-b",
                &people_base,
                "-s",
                "one",
                "(objectClass=person)",
                "1.1",
            ])
            .await;
        let listed: BTreeSet<String> = dns.iter().cloned().collect();
        assert_eq!(listed.len(), dns.len(), "an entry came twice: {dns:?}");
        listed
    }

    /// The ids of the pool's active users, as the store holds them.
    async fn active_users(&self) -> BTreeSet<String> {
        let pool = PoolId(self.pool.clone());
        let query = UserQuery {
            status: Some(UserStatus::Active),
            ..Default::default()
        };
        let mut out = BTreeSet::new();
        let mut page = KeyPage::first(500);
        loop {
            let got = self.s.store.list_users(&pool, &query, &page).await.unwrap();
            out.extend(got.items.into_iter().map(|u| u.id.0));
            match got.next {
                Some(n) => page.after = Some(n),
                None => return out,
            }
        }
    }
}

async fn credential(s: &Served, pool: &str, name: &str, scopes: &[&str]) -> String {
    let (status, created) = s
        .post(
            &format!("/api/v1/pools/{pool}/credentials"),
            &json!({"name": name, "scopes": scopes}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["token"].as_str().unwrap().to_owned()
}

fn has_ldap_utils() -> bool {
    let found = Command::new("ldapsearch").arg("-VV").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "ldapsearch is missing: scripts/test.sh installs Debian's ldap-utils"
        );
        eprintln!("ldapsearch is not installed (Debian ldap-utils): LDAP client tests skipped");
    }
    found
}

#[tokio::test]
async fn ldapsearch_reads_a_pool_through_a_service_bind() {
    if !has_ldap_utils() {
        return;
    }
    for backend in Backend::all() {
        let v = View::start(backend).await;

        // The Root DSE names the pool and offers paged results and WhoAmI.
        let (code, out, err) = v
            .tool("ldapsearch", &["-LLL", "-b", "", "-s", "base", "+", "*"])
            .await;
        assert_eq!(code, 0, "{backend:?}: {err}");
        assert!(
            out.contains("supportedControl: 1.2.840.113556.1.4.319"),
            "{out}"
        );
        assert!(
            out.contains("supportedExtension: 1.3.6.1.4.1.4203.1.11.3"),
            "{out}"
        );
        assert!(
            out.contains(&format!("namingContexts: {}", v.base)),
            "{out}"
        );

        // Every active user exactly once, two per page.
        let active = v.active_users().await;
        assert!(active.len() > 10, "{backend:?}: too few users to page");
        let listed = v.people_two_per_page().await;
        let expected: BTreeSet<String> = active.iter().map(|id| v.person(id)).collect();
        assert_eq!(listed, expected, "{backend:?}");
        // The same without paging, from the base, as a subtree.
        let all = v
            .search_dns(&["-b", &v.base, "(objectClass=inetOrgPerson)", "uid"])
            .await;
        assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), expected);

        // A person found by `uid` names its manager by DN (read in the same statement).
        let (person, leader) = v.s.emu.with_tenant(|t| {
            let shown = |k: &emulator::tenant::UserKey| {
                t.users.get(k).is_some_and(|u| {
                    u.status.activated
                        && !u.status.frozen
                        && !u.status.resigned
                        && !u.status.exited
                        && !u.status.unjoin
                })
            };
            t.users
                .values()
                .find_map(|u| {
                    let l = u.leader?;
                    (shown(&u.key) && shown(&l)).then_some((u.key, l))
                })
                .unwrap()
        });
        let (person, leader) = (v.object_id(person).await, v.object_id(leader).await);
        let out = v
            .ldif(&["-b", &v.base, &format!("(uid={person})"), "manager"])
            .await;
        assert_eq!(
            ldif_value(&out, "manager"),
            Some(v.person(&leader)),
            "{backend:?}: {out}"
        );

        // Every live department and group, three per page.
        let pool_id = PoolId(v.pool.clone());
        for (ou, count) in [
            (
                "departments",
                v.s.store.count_departments(&pool_id).await.unwrap(),
            ),
            ("groups", v.s.store.count_groups(&pool_id).await.unwrap()),
        ] {
            let dns = v
                .search_dns(&[
                    "-E",
                    "pr=3/noprompt",
                    "-b",
                    &format!("ou={ou},{}", v.base),
                    "-s",
                    "one",
                    "(objectClass=groupOfNames)",
                    "1.1",
                ])
                .await;
            let unique: BTreeSet<&String> = dns.iter().collect();
            assert_eq!(unique.len(), dns.len(), "{backend:?}: {ou} twice");
            assert_eq!(dns.len() as u64, count, "{backend:?}: {ou}");
            assert!(count > 0, "{backend:?}: no {ou} to list");
        }

        // One user by uid, with its attributes; names and values in any case.
        let someone = active.iter().next().unwrap().clone();
        let user =
            v.s.store
                .get_user(
                    &PoolId(v.pool.clone()),
                    &directory::ids::UserId(someone.clone()),
                )
                .await
                .unwrap()
                .unwrap();
        let out = v
            .ldif(&[
                "-b",
                &v.base,
                &format!("(&(OBJECTCLASS=Person)(UID={}))", someone.to_uppercase()),
                "uid",
                "mail",
                "memberOf",
                "entryUUID",
            ])
            .await;
        assert!(
            out.contains(&format!("dn: {}", v.person(&someone))),
            "{out}"
        );
        if let Some(mail) = &user.profile.email {
            assert!(out.contains(&format!("mail: {mail}")), "{out}");
        }
        for m in &user.departments {
            assert!(
                out.contains(&format!(
                    "memberOf: cn={},ou=departments,{}",
                    m.department_id, v.base
                )),
                "{backend:?}: {out}"
            );
        }
        assert!(out.contains("entryUUID: "), "{out}");

        // The members of a group by memberOf (GitLab's user filter), and ldapcompare.
        let pool = PoolId(v.pool.clone());
        let groups =
            v.s.store
                .list_groups(&pool, &KeyPage::first(50))
                .await
                .unwrap();
        let mut checked = false;
        for g in &groups.items {
            let group =
                v.s.store
                    .get_group(&pool, &g.group.id)
                    .await
                    .unwrap()
                    .unwrap();
            let users: BTreeSet<String> = group
                .members
                .iter()
                .filter_map(|m| match m {
                    GroupMember::User(u) if active.contains(u.as_str()) => {
                        Some(v.person(u.as_str()))
                    }
                    _ => None,
                })
                .collect();
            if users.is_empty() {
                continue;
            }
            let group_dn = format!("cn={},ou=groups,{}", group.id, v.base);
            // The DN in another spelling still matches.
            let spelled = group_dn.to_uppercase().replace(',', ", ");
            let found = v
                .search_dns(&[
                    "-b",
                    &v.base,
                    &format!("(&(objectClass=person)(memberOf={spelled}))"),
                    "1.1",
                ])
                .await;
            assert_eq!(
                found.into_iter().collect::<BTreeSet<_>>(),
                users,
                "{backend:?}"
            );
            let member = users.iter().next().unwrap();
            let (code, out, err) = v
                .tool("ldapcompare", &[&group_dn, &format!("member:{member}")])
                .await;
            assert_eq!(code, 6, "{backend:?}: compareTrue expected: {out}{err}");
            let stranger = v.person("nobody");
            let (code, _, _) = v
                .tool("ldapcompare", &[&group_dn, &format!("member:{stranger}")])
                .await;
            assert_eq!(code, 5, "{backend:?}: compareFalse expected");
            checked = true;
            break;
        }
        assert!(
            checked,
            "{backend:?}: no group with active members to check"
        );

        // Who am I, and what a bind may not do.
        let (code, out, err) = v.tool("ldapwhoami", &[]).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(out.trim(), format!("dn:{}", v.bind_dn("reader")));
        let wrong = v.token.replace("osc_", "osc_0");
        let (code, _, _) = v
            .tool_as("ldapwhoami", &v.bind_dn("reader"), &wrong, &[])
            .await;
        assert_eq!(code, 49, "{backend:?}: a wrong token binds");
        let no_scope = credential(&v.s, &v.pool, "feeder", &["events:read"]).await;
        let (code, _, err) = v
            .tool_as("ldapwhoami", &v.bind_dn("feeder"), &no_scope, &[])
            .await;
        assert_eq!(
            code, 50,
            "{backend:?}: a credential without ldap:search binds: {err}"
        );
        // Another pool's credential reads nothing here.
        let (_, other) = pool_and_connection_named(&v.s, "Other").await;
        let other_token = credential(&v.s, &other, "reader", &["ldap:search"]).await;
        let (code, _, _) = v
            .tool_as("ldapwhoami", &v.bind_dn("reader"), &other_token, &[])
            .await;
        assert_eq!(code, 49, "{backend:?}: another pool's token binds here");
        // Anonymous reads nothing by default.
        let out = tokio::process::Command::new("ldapsearch")
            .args([
                "-x",
                "-H",
                &v.url(),
                "-b",
                &v.base,
                "-LLL",
                "(objectClass=*)",
            ])
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(50),
            "{backend:?}: anonymous read the pool"
        );
        // Writes are refused with unwillingToPerform.
        let (code, _, _) = v.tool("ldapdelete", &[&v.person(&someone)]).await;
        assert_eq!(code, 53, "{backend:?}");

        // A user frozen in Feishu disappears from the next search once its event is applied,
        // from the groups that list it too: pick a member of a group.
        let mut member = None;
        for g in &groups.items {
            let group =
                v.s.store
                    .get_group(&pool, &g.group.id)
                    .await
                    .unwrap()
                    .unwrap();
            member = group.members.iter().find_map(|m| match m {
                GroupMember::User(u) if active.contains(u.as_str()) => Some(u.clone()),
                _ => None,
            });
            if member.is_some() {
                break;
            }
        }
        let member = member.expect("a group with an active member");
        let refs =
            v.s.store
                .refs_of(ObjectKind::User, member.as_str())
                .await
                .unwrap();
        let key = v.s.emu.with_tenant(|t| {
            t.users
                .keys()
                .copied()
                .find(|k| refs.iter().any(|r| r.external_id == open_id(*k)))
                .unwrap()
        });
        let member_filter = format!("(member={})", v.person(member.as_str()));
        let groups_base = format!("ou=groups,{}", v.base);
        assert!(
            !v.search_dns(&["-b", &groups_base, &member_filter, "1.1"])
                .await
                .is_empty(),
            "{backend:?}: the member's group is not found by member"
        );
        let frozen = v.object_id(key).await;
        v.change(&|t| t.freeze(key)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = v
                .search_dns(&["-b", &v.base, &format!("(uid={frozen})"), "1.1"])
                .await;
            if found.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: the frozen user is still listed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(frozen, member.0);
        assert!(
            v.search_dns(&["-b", &groups_base, &member_filter, "1.1"])
                .await
                .is_empty(),
            "{backend:?}: a group still lists the frozen user"
        );

        // Garbage on a connection closes that connection only.
        let mut raw = tokio::net::TcpStream::connect(v.ldap.addr).await.unwrap();
        raw.write_all(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01])
            .await
            .unwrap();
        raw.write_all(&vec![0x41; 70_000]).await.unwrap_or(());
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{backend:?}: the connection stayed open: {read:?}"
        );
        let (code, _, err) = v.tool("ldapwhoami", &[]).await;
        assert_eq!(code, 0, "{backend:?}: {err}");

        // A connection bound with a credential loses it at its next operation once revoked.
        let mut conn = raw_client::Client::connect(v.ldap.addr).await;
        assert_eq!(
            conn.bind(&v.bind_dn("reader"), &v.token).await,
            LdapResultCode::Success
        );
        let people = format!("ou=people,{}", v.base);
        assert_eq!(conn.search_base(&people).await, LdapResultCode::Success);
        let id = directory::credentials::parse_token(&v.token).unwrap().0;
        let (status, revoked) =
            v.s.post(
                &format!("/api/v1/pools/{}/credentials/{id}/revoke", v.pool),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{revoked}");
        assert_eq!(
            conn.search_base(&people).await,
            LdapResultCode::InsufficentAccessRights,
            "{backend:?}: a revoked credential still reads"
        );

        // Guessing locks the source out, whatever it sends next (limit 5 here).
        for _ in 0..5 {
            let (code, _, _) = v
                .tool_as("ldapwhoami", &v.bind_dn("guess"), "osc_wrong_token", &[])
                .await;
            assert_eq!(code, 49, "{backend:?}");
        }
        let fresh = credential(&v.s, &v.pool, "fresh", &["ldap:search"]).await;
        let (code, _, err) = v
            .tool_as("ldapwhoami", &v.bind_dn("fresh"), &fresh, &[])
            .await;
        assert_eq!(code, 49, "{backend:?}: a locked-out source binds");
        assert!(err.contains("too many failed binds"), "{err}");

        v.ldap.stop().await;
        eprintln!("LDAP view checked with ldap-utils on {backend:?}");
    }
}

async fn pool_and_connection_named(s: &Served, name: &str) -> (StatusCode, String) {
    let (status, pool) = s.post("/api/v1/pools", &json!({"name": name})).await;
    (status, pool["id"].as_str().unwrap().to_owned())
}

/// A minimal LDAP client over `ldap3_proto`'s message types, for what the command-line tools
/// cannot do: keep one bound connection across a change.
mod raw_client {
    use bytes::BytesMut;
    use ldap3_proto::LdapCodec;
    use ldap3_proto::proto::{
        LdapBindCred, LdapBindRequest, LdapDerefAliases, LdapFilter, LdapMsg, LdapOp,
        LdapResultCode, LdapSearchRequest, LdapSearchScope,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::codec::{Decoder, Encoder};

    pub struct Client {
        stream: tokio::net::TcpStream,
        codec: LdapCodec,
        buf: BytesMut,
        next_id: i32,
    }

    impl Client {
        pub async fn connect(addr: std::net::SocketAddr) -> Client {
            Client {
                stream: tokio::net::TcpStream::connect(addr).await.unwrap(),
                codec: LdapCodec::default(),
                buf: BytesMut::new(),
                next_id: 1,
            }
        }

        async fn send(&mut self, op: LdapOp) -> i32 {
            let id = self.next_id;
            self.next_id += 1;
            let mut out = BytesMut::new();
            self.codec.encode(LdapMsg::new(id, op), &mut out).unwrap();
            self.stream.write_all(&out).await.unwrap();
            id
        }

        async fn receive(&mut self) -> LdapMsg {
            loop {
                if let Some(m) = self.codec.decode(&mut self.buf).unwrap() {
                    return m;
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the server closed the connection");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        pub async fn bind(&mut self, dn: &str, password: &str) -> LdapResultCode {
            self.send(LdapOp::BindRequest(LdapBindRequest {
                version: 3,
                dn: dn.to_owned(),
                cred: LdapBindCred::Simple(password.to_owned()),
            }))
            .await;
            match self.receive().await.op {
                LdapOp::BindResponse(r) => r.res.code,
                other => panic!("not a bind response: {other:?}"),
            }
        }

        /// A base search of `dn`; the result code of its SearchResultDone.
        pub async fn search_base(&mut self, dn: &str) -> LdapResultCode {
            self.send(LdapOp::SearchRequest(LdapSearchRequest {
                base: dn.to_owned(),
                scope: LdapSearchScope::Base,
                aliases: LdapDerefAliases::Never,
                sizelimit: 0,
                timelimit: 0,
                typesonly: false,
                filter: LdapFilter::Present("objectClass".into()),
                attrs: vec![],
            }))
            .await;
            loop {
                match self.receive().await.op {
                    LdapOp::SearchResultEntry(_) => continue,
                    LdapOp::SearchResultDone(r) => return r.code,
                    other => panic!("not a search response: {other:?}"),
                }
            }
        }
    }
}

/// Searches with PyPI `ldap3` (a client we did not write, the one many Python apps embed):
/// the people of `base` by paged search at each page size, or with `filter` unpaged.
fn ldap3_search(v: &View, base: &str, filter: &str, sizes: &[u32]) -> Vec<Vec<String>> {
    use std::io::Write as _;
    let python = r#"
import json, sys
from ldap3 import Server, Connection, LEVEL, SUBTREE
doc = json.loads(sys.stdin.read())
server = Server(doc["host"], port=doc["port"], get_info=None)
conn = Connection(server, user=doc["dn"], password=doc["password"], auto_bind=True)
out = []
for size in doc["sizes"]:
    if size == 0:
        conn.search(doc["base"], doc["filter"], search_scope=SUBTREE, attributes=["uid"])
        out.append([e.entry_dn for e in conn.entries])
    else:
        found = conn.extend.standard.paged_search(doc["base"], doc["filter"], search_scope=LEVEL,
                                                  attributes=["uid"], paged_size=size,
                                                  generator=False)
        out.append([e["dn"] for e in found if e.get("type") == "searchResEntry"])
conn.unbind()
print(json.dumps(out))
"#;
    let input = json!({
        "host": v.ldap.addr.ip().to_string(),
        "port": v.ldap.addr.port(),
        "dn": v.bind_dn("reader"),
        "password": v.token,
        "base": base,
        "filter": filter,
        "sizes": sizes,
    })
    .to_string();
    let mut child = Command::new("python3")
        .args(["-c", python])
        .env("PYTHONPATH", verifiers().join("py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ldap3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn verifiers() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/verifiers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ldap3_pages_and_finds_what_changed() {
    if !verifiers().join("py/ldap3").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "PyPI ldap3 is missing: scripts/test.sh installs it under target/verifiers"
        );
        eprintln!("PyPI ldap3 is not installed under target/verifiers: skipped");
        return;
    }
    for backend in Backend::all() {
        let v = View::start(backend).await;
        let expected: BTreeSet<String> = v
            .active_users()
            .await
            .iter()
            .map(|id| v.person(id))
            .collect();
        let people = format!("ou=people,{}", v.base);
        // The python client blocks its thread; this runtime has another for the listener.
        let pages = tokio::task::block_in_place(|| {
            ldap3_search(&v, &people, "(objectClass=person)", &[1, 7, 500])
        });
        for (size, dns) in [1, 7, 500].iter().zip(pages) {
            let set: BTreeSet<String> = dns.iter().cloned().collect();
            assert_eq!(set.len(), dns.len(), "{backend:?}: page size {size}: twice");
            assert_eq!(set, expected, "{backend:?}: page size {size}");
        }

        // Keycloak's changed-users sync: what changed since T, by its timestamps (seconds).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let since = directory::ids::now_ms();
        let t = ldap::entry::generalized_time(since - since % 1000);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let key = v.s.emu.with_tenant(|t| {
            t.users
                .iter()
                .find(|(_, u)| !u.status.frozen && !u.status.resigned)
                .map(|(k, _)| *k)
                .unwrap()
        });
        let renamed = v.object_id(key).await;
        v.change(&|t| {
            t.update_user(
                key,
                &emulator::mutate::UserPatch {
                    name: Some("Renamed Person".into()),
                    ..Default::default()
                },
            )
        })
        .await;
        let pool = PoolId(v.pool.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        while v
            .s
            .store
            .get_user(&pool, &directory::ids::UserId(renamed.clone()))
            .await
            .unwrap()
            .unwrap()
            .profile
            .name
            .as_deref()
            != Some("Renamed Person")
        {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: the rename was not applied"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let filter = format!("(|(createTimestamp>={t})(modifyTimestamp>={t}))");
        let changed = tokio::task::block_in_place(|| ldap3_search(&v, &people, &filter, &[0]));
        assert_eq!(changed[0], [v.person(&renamed)], "{backend:?}: {filter}");
        v.ldap.stop().await;
    }
}

#[tokio::test]
async fn ldaps_serves_the_view_over_tls_with_the_configured_certificate() {
    if !has_ldap_utils() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = tokio::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let v = View::start(Backend::Sqlite).await;
    let acceptor = ldap::server::tls_acceptor(&cert, &key).unwrap();
    let secure = RunningLdap::start_with(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(Shared::new(
            v.s.store.clone(),
            v.s.key.clone(),
            Settings::default(),
        )),
        Limits::default(),
        Some(acceptor),
    )
    .await
    .unwrap();
    let whoami = |ca: Option<&std::path::Path>| {
        let mut c = tokio::process::Command::new("ldapwhoami");
        c.args(["-x", "-H", &format!("ldaps://{}", secure.addr)])
            .args(["-D", &v.bind_dn("reader"), "-w", &v.token])
            .env("LDAPTLS_REQCERT", "demand");
        match ca {
            Some(ca) => c.env("LDAPTLS_CACERT", ca),
            None => c.env("LDAPTLS_CACERT", "/nonexistent"),
        };
        c.output()
    };
    let out = whoami(Some(&cert)).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("dn:{}", v.bind_dn("reader"))
    );
    // Without trusting the certificate the client refuses: it is real TLS.
    let out = whoami(None).await.unwrap();
    assert!(
        !out.status.success(),
        "a client that trusts nothing connected"
    );
    // A key that is not the certificate's is refused with which files to fix.
    let other = dir.path().join("other.pem");
    let made = tokio::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&other)
        .output()
        .await
        .unwrap();
    assert!(made.status.success());
    let e = ldap::server::tls_acceptor(&cert, &other).err().unwrap();
    assert!(e.contains("does not fit"), "{e}");
    let e = ldap::server::tls_acceptor(&dir.path().join("missing.pem"), &key)
        .err()
        .unwrap();
    assert!(e.contains("missing.pem"), "{e}");
    secure.stop().await;
    v.ldap.stop().await;
}

/// The value of `attr` in an `ldapsearch -LLL` output (the first one).
/// The first value of `attr` in `ldapsearch`'s LDIF, decoded when it came in base64
/// (`attr:: …`, as LDIF writes any value that is not plain ASCII, Chinese names included).
fn ldif_value(out: &str, attr: &str) -> Option<String> {
    use base64::Engine as _;
    out.lines().find_map(|l| {
        if let Some(v) = l.strip_prefix(&format!("{attr}: ")) {
            return Some(v.to_owned());
        }
        let encoded = l.strip_prefix(&format!("{attr}:: "))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    })
}

#[tokio::test]
async fn a_renamed_and_moved_department_keeps_its_dn() {
    if !has_ldap_utils() {
        return;
    }
    for backend in Backend::all() {
        let v = View::start(backend).await;
        let (moving, target, below) = v.s.emu.with_tenant(|t| {
            let top = t.children("0");
            // A shown person in the moving department or below it.
            let mut departments = vec![top[0].clone()];
            let mut below = None;
            while let Some(d) = departments.pop() {
                below = t
                    .members(&d)
                    .iter()
                    .filter_map(|k| t.users.get(k))
                    .find(|u| {
                        u.status.activated
                            && !u.status.frozen
                            && !u.status.resigned
                            && !u.status.exited
                            && !u.status.unjoin
                    })
                    .map(|u| u.key);
                if below.is_some() {
                    break;
                }
                departments.extend(t.children(&d).iter().cloned());
            }
            (top[0].clone(), top[1].clone(), below.unwrap())
        });
        // Named by its orgsync id: this tenant's app is not granted Feishu `user_id`s.
        let person = v.person(&v.object_id(below).await);
        let person_args = [
            "-b",
            person.as_str(),
            "-s",
            "base",
            "(objectClass=*)",
            "modifyTimestamp",
            "memberOf",
        ];
        let person_before = v.ldif(&person_args).await;
        let person_stamp = ldif_value(&person_before, "modifyTimestamp")
            .unwrap_or_else(|| panic!("{backend:?}: {below} not found: {person_before}"));
        let connection = ConnectionId(v.connection.clone());
        let id_of = |open: String| {
            let store = v.s.store.clone();
            let connection = connection.clone();
            async move {
                store
                    .find_external(&connection, ObjectKind::Department, &open)
                    .await
                    .unwrap()
                    .unwrap()
                    .object_id
            }
        };
        let (id, parent) = (id_of(moving.clone()).await, id_of(target.clone()).await);
        let dn = format!("cn={id},ou=departments,{}", v.base);
        let args = [
            "-b",
            dn.as_str(),
            "-s",
            "base",
            "(objectClass=*)",
            "displayName",
            "memberOf",
            "modifyTimestamp",
            "description",
        ];
        let read = || v.ldif(&args);
        let before = read().await;
        let stamp = ldif_value(&before, "modifyTimestamp").unwrap();
        // Timestamps have whole seconds: let one pass.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        v.change(&|t| {
            t.rename_department(
                &moving,
                "Renamed Department",
                emulator::tenant::I18n::default(),
            )
        })
        .await;
        v.change(&|t| t.move_department(&moving, &target)).await;
        let parent_dn = format!("cn={parent},ou=departments,{}", v.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        let after = loop {
            let out = read().await;
            if ldif_value(&out, "displayName").as_deref() == Some("Renamed Department")
                && ldif_value(&out, "memberOf").as_deref() == Some(parent_dn.as_str())
            {
                break out;
            }
            assert!(
                Instant::now() < deadline,
                "{backend:?}: not renamed and moved: {out}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(ldif_value(&after, "dn"), Some(dn.clone()), "{backend:?}");
        // Its path of names: now under the other department, with its new name.
        let path = ldif_value(&after, "description").unwrap();
        assert!(
            path.ends_with(" / Renamed Department") && !path.starts_with("Renamed"),
            "{backend:?}: {after}"
        );
        assert_ne!(
            ldif_value(&before, "description"),
            Some(path),
            "{backend:?}"
        );
        // A person below it: its memberOf (by subtree) now names the new parent, and its
        // modifyTimestamp moved with it.
        let person_after = v.ldif(&person_args).await;
        assert!(
            person_after.contains(&format!("memberOf: {parent_dn}")),
            "{backend:?}: {person_after}"
        );
        assert!(
            ldif_value(&person_after, "modifyTimestamp").unwrap() > person_stamp,
            "{backend:?}: {person_before}\n{person_after}"
        );
        assert!(
            ldif_value(&after, "modifyTimestamp").unwrap() > stamp,
            "{backend:?}: {after}"
        );
        v.ldap.stop().await;
    }
}

/// A filter nested 10,000 deep, sent as raw BER: refused by the depth limit with the
/// connection closed, and the server keeps serving.
#[tokio::test]
async fn a_filter_ten_thousand_deep_closes_only_its_connection() {
    if !has_ldap_utils() {
        return;
    }
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let n = body.len();
        if n < 0x80 {
            out.push(n as u8);
        } else {
            let bytes: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(body);
        out
    }
    // (objectClass=*) inside 10,000 NOTs.
    let mut filter = tlv(0x87, b"objectClass");
    for _ in 0..10_000 {
        filter = tlv(0xa2, &filter);
    }
    let mut search = Vec::new();
    search.extend(tlv(0x04, b""));
    search.extend(tlv(0x0a, &[2]));
    search.extend(tlv(0x0a, &[0]));
    search.extend(tlv(0x02, &[0]));
    search.extend(tlv(0x02, &[0]));
    search.extend(tlv(0x01, &[0]));
    search.extend(filter);
    search.extend(tlv(0x30, b""));
    let mut message = tlv(0x02, &[1]);
    message.extend(tlv(0x63, &search));
    let message = tlv(0x30, &message);
    assert!(
        message.len() < 64 * 1024,
        "under the size limit: only depth refuses it"
    );

    let v = View::start(Backend::Sqlite).await;
    let mut raw = tokio::net::TcpStream::connect(v.ldap.addr).await.unwrap();
    raw.write_all(&message).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the connection stayed open: {read:?}"
    );
    let (code, _, err) = v.tool("ldapwhoami", &[]).await;
    assert_eq!(code, 0, "{err}");
    v.ldap.stop().await;
}

/// The acceptance tenant of docs/ldap.md: two departments named "Ops" under different
/// parents, a person in three departments, people who will be frozen and resign; `uid` from
/// Feishu's `user_id` (the default login).
struct Acceptance {
    v: View,
    multi: emulator::tenant::UserKey,
    leaver: emulator::tenant::UserKey,
    frozen: emulator::tenant::UserKey,
    /// Open ids of the departments: Platform, Sales, Ops under Platform, Ops under Sales.
    platform: String,
    sales: String,
    ops_platform: String,
    ops_sales: String,
}

impl Acceptance {
    async fn start(backend: Backend) -> Acceptance {
        use emulator::mutate::{Change, NewDepartment, NewUser};
        let mut t = tenant(12, 3, 2, 29);
        let department = |t: &mut emulator::tenant::Tenant, name: &str, parent: &str| {
            let changes = t
                .create_department(NewDepartment {
                    name: name.into(),
                    parent: parent.into(),
                    ..NewDepartment::default()
                })
                .unwrap();
            Change::created_id(&changes).unwrap().to_owned()
        };
        let platform = department(&mut t, "Platform", "0");
        let sales = department(&mut t, "Sales", "0");
        let ops_platform = department(&mut t, "Ops", &platform);
        let ops_sales = department(&mut t, "Ops", &sales);
        let hire = |t: &mut emulator::tenant::Tenant, user_id: &str, departments: Vec<String>| {
            let changes = t
                .hire(NewUser {
                    name: Some(format!("Person {user_id}")),
                    email: Some(format!("{user_id}@example.com")),
                    user_id: Some(user_id.into()),
                    departments,
                    ..NewUser::default()
                })
                .unwrap();
            Change::created_user(&changes).unwrap()
        };
        let multi = hire(
            &mut t,
            "multi.user",
            vec![ops_platform.clone(), ops_sales.clone(), sales.clone()],
        );
        let leaver = hire(&mut t, "leaver.user", vec![ops_sales.clone()]);
        let frozen = hire(&mut t, "frozen.user", vec![ops_platform.clone()]);
        // Every failed bind here comes from one address: more than the default allows.
        let v = View::start_with(backend, t, json!({}), 50).await;
        Acceptance {
            v,
            multi,
            leaver,
            frozen,
            platform,
            sales,
            ops_platform,
            ops_sales,
        }
    }

    /// A department's DN, by its Feishu open id.
    async fn department(&self, open_id: &str) -> String {
        let id = self
            .v
            .s
            .store
            .find_external(
                &ConnectionId(self.v.connection.clone()),
                ObjectKind::Department,
                open_id,
            )
            .await
            .unwrap()
            .unwrap()
            .object_id;
        format!("cn={id},ou=departments,{}", self.v.base)
    }

    /// Issues an app password to the person with this orgsync id.
    async fn app_password(&self, user: &str, label: &str) -> String {
        let (status, created) = self
            .v
            .s
            .post(
                &format!("/api/v1/pools/{}/users/{user}/app-passwords", self.v.pool),
                &json!({"label": label}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["password"].as_str().unwrap().to_owned()
    }
}

fn squid_helper() -> Option<&'static str> {
    let path = "/usr/lib/squid/basic_ldap_auth";
    if std::path::Path::new(path).exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").is_err(),
        "{path} is missing: scripts/test.sh installs Debian's squid"
    );
    eprintln!("squid's basic_ldap_auth is not installed: its check is skipped");
    None
}

#[tokio::test]
async fn the_acceptance_tenant_through_ldapsearch_user_binds_and_squid() {
    if !has_ldap_utils() {
        return;
    }
    for backend in Backend::all() {
        let a = Acceptance::start(backend).await;
        let v = &a.v;
        let multi = v.object_id(a.multi).await;
        let me = v.person("multi.user");

        // Logins come from Feishu's user_id; every active person once, two per page, and
        // each login is its Feishu user_id.
        let tenant_logins: BTreeSet<String> = v.s.emu.state().with_tenant(|t| {
            t.users
                .values()
                .filter(|u| u.status == emulator::tenant::StatusFlags::active())
                .map(|u| u.user_id.to_lowercase())
                .collect()
        });
        let people_base = format!("ou=people,{}", v.base);
        let listed = v.people_two_per_page().await;
        let expected: BTreeSet<String> = tenant_logins.iter().map(|l| v.person(l)).collect();
        assert_eq!(listed, expected, "{backend:?}");

        // Two departments named Ops, two DNs.
        let ops = v
            .search_dns(&[
                "-b",
                &format!("ou=departments,{}", v.base),
                "(displayName=ops)",
                "1.1",
            ])
            .await;
        let mut want = vec![
            a.department(&a.ops_platform).await,
            a.department(&a.ops_sales).await,
        ];
        want.sort();
        let mut ops = ops;
        ops.sort();
        assert_eq!(ops, want, "{backend:?}");

        // The person in three departments is a member of each and, by subtree, of both
        // parents.
        let out = v
            .ldif(&[
                "-b",
                &me,
                "-s",
                "base",
                "(objectClass=*)",
                "memberOf",
                "uid",
                "ou",
            ])
            .await;
        // Its `ou` is its primary department's name (Ops under Platform).
        assert!(out.contains("\nou: Ops\n"), "{backend:?}: {out}");
        // Each Ops says where it is in its `description`.
        for (d, path) in [
            (&a.ops_platform, "Platform / Ops"),
            (&a.ops_sales, "Sales / Ops"),
        ] {
            let dn = a.department(d).await;
            let got = v
                .ldif(&["-b", &dn, "-s", "base", "(objectClass=*)", "description"])
                .await;
            assert_eq!(
                ldif_value(&got, "description").as_deref(),
                Some(path),
                "{backend:?}: {got}"
            );
        }
        for d in [&a.ops_platform, &a.ops_sales, &a.sales, &a.platform] {
            let dn = a.department(d).await;
            assert!(
                out.contains(&format!("memberOf: {dn}")),
                "{backend:?}: {dn}\n{out}"
            );
        }
        assert!(out.contains("uid: multi.user"), "{out}");

        // The filters real tools send (docs/ldap.md, "What tools send").
        let platform = a.department(&a.platform).await;
        let ops_sales = a.department(&a.ops_sales).await;
        for (tool, filter, found) in [
            ("Gitea by uid", "(&(objectClass=person)(|(uid=Multi.User)(mail=Multi.User)))".to_owned(), true),
            ("Gitea by mail", "(&(objectClass=person)(|(uid=MULTI.USER@example.com)(mail=MULTI.USER@example.com)))".to_owned(), true),
            ("Nextcloud", format!("(&(objectclass=inetOrgPerson)(memberOf={ops_sales})(uid=multi.user))"), true),
            ("Keycloak", "(&(objectClass=inetOrgPerson)(objectClass=organizationalPerson)(uid=multi.user))".to_owned(), true),
            ("GitLab, subtree membership", format!("(&(objectclass=person)(memberOf={platform})(uid=multi.user))"), true),
            ("Grafana, a frozen person", "(uid=frozen.user)".to_owned(), true),
            ("a resigned person", "(uid=leaver.user)".to_owned(), true),
            ("an unknown login", "(uid=nobody)".to_owned(), false),
        ] {
            let dns = v.search_dns(&["-b", &v.base, &filter, "1.1"]).await;
            assert_eq!(dns.len(), usize::from(found), "{backend:?}: {tool}: {filter}: {dns:?}");
        }
        let multi_by_id = v
            .search_dns(&["-b", &v.base, &format!("(uid={multi})"), "1.1"])
            .await;
        assert!(
            multi_by_id.is_empty(),
            "a held login hides the id: {multi_by_id:?}"
        );

        // App passwords: a person binds with one; a wrong one and the service's token fail.
        let pw = a.app_password(&multi, "gitlab").await;
        let (code, out, err) = v.tool_as("ldapwhoami", &me, &pw, &[]).await;
        assert_eq!(code, 0, "{backend:?}: {err}");
        assert_eq!(out.trim(), format!("dn:{me}"));
        let (code, _, _) = v
            .tool_as("ldapwhoami", &me, "wrong-pass-word-xxxxx", &[])
            .await;
        assert_eq!(code, 49, "{backend:?}");
        // A person's bind reads its own entry and nothing else.
        let (code, out, err) = v
            .tool_as(
                "ldapsearch",
                &me,
                &pw,
                &["-LLL", "-b", &v.base, "(objectClass=*)", "1.1"],
            )
            .await;
        assert_eq!(code, 0, "{backend:?}: {err}");
        assert_eq!(
            out.lines()
                .filter(|l| l.starts_with("dn: "))
                .collect::<Vec<_>>(),
            [format!("dn: {me}")]
        );

        // squid's helper: service bind to find the person, then the person's bind.
        let frozen = v.object_id(a.frozen).await;
        let leaver = v.object_id(a.leaver).await;
        let frozen_pw = a.app_password(&frozen, "squid").await;
        let leaver_pw = a.app_password(&leaver, "squid").await;
        // Two ways squid is set up: a service bind that searches `uid=%s` (-f), or the
        // person's DN made from the login (-u uid). -P keeps one connection for every
        // request, as squid is usually run; without it the helper reports a wrong password as
        // "BH Success" (it reads the result code from a connection it has already closed).
        let squid = |lines: String, search: bool| {
            let helper = squid_helper();
            let url = v.url();
            let service = v.bind_dn("reader");
            let token = v.token.clone();
            let base = people_base.clone();
            async move {
                let helper = helper?;
                let mut args: Vec<&str> = vec!["-P", "-v", "3", "-b", &base, "-H", &url];
                if search {
                    args.extend(["-D", &service, "-w", &token, "-f", "uid=%s"]);
                } else {
                    args.extend(["-u", "uid"]);
                }
                let mut child = tokio::process::Command::new(helper)
                    .args(&args)
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = child.stdin.take().unwrap();
                tokio::io::AsyncWriteExt::write_all(&mut stdin, lines.as_bytes())
                    .await
                    .unwrap();
                drop(stdin);
                let out = child.wait_with_output().await.unwrap();
                // "OK", "ERR <why>", "BH <why>": the verdicts.
                Some(
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(|l| l.split(' ').next().unwrap_or("").to_owned())
                        .collect::<Vec<String>>(),
                )
            }
        };
        for search in [true, false] {
            let lines = format!("multi.user {pw}\nmulti.user wrong\nfrozen.user {frozen_pw}\n");
            if let Some(out) = squid(lines, search).await {
                assert_eq!(out, ["OK", "ERR", "OK"], "{backend:?}, search {search}");
            }
        }

        // A group that adds the person moves its modifyTimestamp (what tools sync by).
        // GeneralizedTime counts seconds: the import's own times a second behind.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let since = {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            ldap::entry::generalized_time(t)
        };
        let changed = format!("(&(uid=multi.user)(modifyTimestamp>={since}))");
        assert!(
            v.search_dns(&["-b", &v.base, &changed, "1.1"])
                .await
                .is_empty(),
            "{backend:?}: changed before the change"
        );
        let group =
            v.s.emu
                .state()
                .with_tenant(|t| t.groups.keys().next().cloned())
                .unwrap();
        v.change(&|t| t.add_group_members(&group, &[a.multi], &[]))
            .await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while v
            .search_dns(&["-b", &v.base, &changed, "1.1"])
            .await
            .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "{backend:?}: joining a group did not move modifyTimestamp"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Frozen and resigned in Feishu: gone from every search, and their binds fail with
        // 49 at once (their app passwords are revoked in the same write).
        v.change(&|t| t.freeze(a.frozen)).await;
        v.change(&|t| t.resign(a.leaver)).await;
        for (login, pw) in [("frozen.user", &frozen_pw), ("leaver.user", &leaver_pw)] {
            // The worker applies the delivered events on its own time: seconds at most.
            let deadline = Instant::now() + Duration::from_secs(30);
            while !v
                .search_dns(&["-b", &v.base, &format!("(uid={login})"), "1.1"])
                .await
                .is_empty()
            {
                assert!(
                    Instant::now() < deadline,
                    "{backend:?}: {login} still shown"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (code, _, _) = v.tool_as("ldapwhoami", &v.person(login), pw, &[]).await;
            assert_eq!(code, 49, "{backend:?}: {login} could bind");
        }
        for user in [&frozen, &leaver] {
            let (_, listed) =
                v.s.get(&format!(
                    "/api/v1/pools/{}/users/{user}/app-passwords",
                    v.pool
                ))
                .await;
            assert!(listed[0]["revoked_at"].is_i64(), "{backend:?}: {listed}");
        }
        // A person who left is found by no search: squid answers BH (denied) as for any
        // unknown name; bound by DN, the bind itself is refused: ERR.
        for (search, verdict) in [(true, "BH"), (false, "ERR")] {
            let lines = format!("frozen.user {frozen_pw}\nmulti.user {pw}\n");
            if let Some(out) = squid(lines, search).await {
                assert_eq!(out, [verdict, "OK"], "{backend:?}, search {search}");
            }
        }

        // A department lists its shown people in `member`: Sales by subtree has the person
        // (directly and through Ops under Sales) and no longer the one who resigned from
        // Ops under Sales; Platform not the frozen person of Ops under Platform.
        let sales = a.department(&a.sales).await;
        let leaver_dn = v.person("leaver.user");
        let frozen_dn = v.person("frozen.user");
        for (department, gone) in [(&sales, &leaver_dn), (&platform, &frozen_dn)] {
            let out = v
                .ldif(&["-b", department, "-s", "base", "(objectClass=*)", "member"])
                .await;
            assert!(out.contains(&format!("member: {me}")), "{backend:?}: {out}");
            assert!(!out.contains(gone.as_str()), "{backend:?}: {out}");
        }
        for (who, code) in [(&me, 6), (&leaver_dn, 5)] {
            let (got, out, err) = v
                .tool("ldapcompare", &[&sales, &format!("member:{who}")])
                .await;
            assert_eq!(got, code, "{backend:?}: {who}: {out}{err}");
        }
        // Without `member` asked for, a department entry does not carry it.
        let out = v
            .ldif(&["-b", &sales, "-s", "base", "(objectClass=*)", "cn"])
            .await;
        assert!(!out.contains("member:"), "{backend:?}: {out}");

        // Department membership by the direct rule: the parent no longer counts the person.
        let (status, saved) =
            v.s.send(
                reqwest::Method::PUT,
                &format!("/api/v1/pools/{}/ldap-settings", v.pool),
                Some(&json!({"department_members": "direct"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        let direct = v
            .search_dns(&[
                "-b",
                &v.base,
                &format!("(&(memberOf={platform})(uid=multi.user))"),
                "1.1",
            ])
            .await;
        assert!(direct.is_empty(), "{backend:?}: {direct:?}");
        let direct = v
            .search_dns(&[
                "-b",
                &v.base,
                &format!("(&(memberOf={ops_sales})(uid=multi.user))"),
                "1.1",
            ])
            .await;
        assert_eq!(direct, std::slice::from_ref(&me), "{backend:?}");
        // Platform's own members: none (the person is in Ops under it).
        let out = v
            .ldif(&["-b", &platform, "-s", "base", "(objectClass=*)", "member"])
            .await;
        assert!(!out.contains("member:"), "{backend:?}: {out}");

        // POSIX attributes for SSSD: its filters find the person and its groups.
        let (status, saved) =
            v.s.send(
                reqwest::Method::PUT,
                &format!("/api/v1/pools/{}/ldap-settings", v.pool),
                Some(&json!({"posix": true, "posix_id_base": 20000})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        let out = v
            .ldif(&[
                "-b",
                &v.base,
                "(&(uid=multi.user)(objectclass=posixAccount))",
                "uidNumber",
                "gidNumber",
                "homeDirectory",
                "loginShell",
            ])
            .await;
        assert!(out.contains(&format!("dn: {me}")), "{backend:?}: {out}");
        let uid_number: i64 = ldif_value(&out, "uidNumber").unwrap().parse().unwrap();
        assert!(uid_number > 20000, "{out}");
        assert!(out.contains("homeDirectory: /home/multi.user"), "{out}");
        // Its gidNumber is its primary department's (Ops under Platform), a posixGroup.
        let gid = ldif_value(&out, "gidNumber").unwrap();
        let ops_platform = a.department(&a.ops_platform).await;
        let groups = v
            .search_dns(&[
                "-b",
                &v.base,
                &format!("(&(objectClass=posixGroup)(gidNumber={gid}))"),
                "1.1",
            ])
            .await;
        assert_eq!(groups, [ops_platform], "{backend:?}");
        // Looked up by number, as `getent passwd <uid>` does.
        let by_number = v
            .search_dns(&[
                "-b",
                &people_base,
                &format!("(&(objectClass=posixAccount)(uidNumber={uid_number}))"),
                "1.1",
            ])
            .await;
        assert_eq!(by_number, std::slice::from_ref(&me), "{backend:?}");

        // The e-mail's local part as the login, and a base DN of the pool's own.
        let (status, saved) =
            v.s.send(
                reqwest::Method::PUT,
                &format!("/api/v1/pools/{}/ldap-settings", v.pool),
                Some(&json!({"login": "email_local_part", "base_dn": "dc=Example, dc=COM"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{saved}");
        assert_eq!(saved["base_dn"], "dc=Example,dc=COM");
        let (code, out, err) = v
            .tool_as(
                "ldapsearch",
                "cn=reader,ou=services,dc=example,dc=com",
                &v.token,
                &[
                    "-LLL",
                    "-b",
                    "dc=example,dc=com",
                    "(uid=multi.user)",
                    "uid",
                    "mail",
                ],
            )
            .await;
        assert_eq!(code, 0, "{backend:?}: {err}");
        assert!(
            out.contains("dn: uid=multi.user,ou=people,dc=Example,dc=COM"),
            "{out}"
        );
        let (code, _, _) = v
            .tool_as(
                "ldapwhoami",
                "uid=multi.user,ou=people,dc=example,dc=com",
                &pw,
                &[],
            )
            .await;
        assert_eq!(code, 0, "{backend:?}: the person binds under the new base");
    }
}
