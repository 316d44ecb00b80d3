//! Dashboard users, their memberships, sessions and invitations (migration 0014).
//!
//! Every change of state is conditional on the state it expects (a session ends once, an
//! invitation is accepted once and only before it expires, the last owner cannot be demoted or
//! removed), so two requests racing on the same row cannot both win.

use crier_core::ids::{InvitationId, SessionId, UserId, WorkspaceId};
use crier_core::{KeyDigest, Role};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::{Workspace, workspace_from_row};
use crate::{Result, Store, StoreError, Tx, unique_to_conflict};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    /// The Argon2id hash in PHC string form.
    pub password_hash: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user's place in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub workspace: Workspace,
    pub role: Role,
    pub created_at: i64,
}

/// A workspace's member as its member list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// The CSRF token of this session (the dashboard sends it with every change).
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub user_agent: String,
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: InvitationId,
    pub workspace_id: WorkspaceId,
    pub role: Role,
    pub email: Option<String>,
    pub created_by: UserId,
    pub created_at: i64,
    pub expires_at: i64,
    pub accepted_at: Option<i64>,
    pub accepted_by: Option<UserId>,
    pub revoked_at: Option<i64>,
}

/// Why an invitation could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationRefusal {
    /// Unknown, used, revoked or expired: the same answer for all, so a guess learns nothing.
    Invalid,
    /// The user is already a member of the workspace.
    AlreadyMember,
}

const USER_COLUMNS: &str = "id, email, name, password_hash, created_at, updated_at";
const SESSION_COLUMNS: &str = "id, user_id, csrf, created_at, expires_at, ended_at, user_agent, ip";
const INVITATION_COLUMNS: &str = "id, workspace_id, role, email, created_by, created_at, \
    expires_at, accepted_at, accepted_by, revoked_at";

/// The form of an email address under which it is unique.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

fn user_from_row(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: UserId::from_trusted(row.try_get("id")?),
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn role_from(row: &AnyRow, column: &str) -> Result<Role> {
    let role: String = row.try_get(column)?;
    Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("{column}: {role}")))
}

fn session_from_row(row: &AnyRow) -> Result<Session> {
    Ok(Session {
        id: SessionId::from_trusted(row.try_get("id")?),
        user_id: UserId::from_trusted(row.try_get("user_id")?),
        csrf: row.try_get("csrf")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        ended_at: row.try_get("ended_at")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
    })
}

fn invitation_from_row(row: &AnyRow) -> Result<Invitation> {
    let accepted_by: Option<String> = row.try_get("accepted_by")?;
    Ok(Invitation {
        id: InvitationId::from_trusted(row.try_get("id")?),
        workspace_id: WorkspaceId::from_trusted(row.try_get("workspace_id")?),
        role: role_from(row, "role")?,
        email: row.try_get("email")?,
        created_by: UserId::from_trusted(row.try_get("created_by")?),
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        accepted_at: row.try_get("accepted_at")?,
        accepted_by: accepted_by.map(UserId::from_trusted),
        revoked_at: row.try_get("revoked_at")?,
    })
}

async fn insert_user(tx: &mut Tx, user: &User) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, email, email_key, name, password_hash, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(user.id.as_str())
    .bind(&user.email)
    .bind(email_key(&user.email))
    .bind(&user.name)
    .bind(&user.password_hash)
    .bind(user.created_at)
    .bind(user.updated_at)
    .execute(&mut **tx)
    .await
    .map_err(unique_to_conflict("a user with this email"))?;
    Ok(())
}

async fn insert_membership(
    tx: &mut Tx,
    ws: &WorkspaceId,
    user: &UserId,
    role: Role,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO memberships (workspace_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(ws.as_str())
    .bind(user.as_str())
    .bind(role.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(unique_to_conflict("this membership"))?;
    Ok(())
}

async fn insert_workspace(tx: &mut Tx, name: &str, plan: &str, now: i64) -> Result<Workspace> {
    let row = sqlx::query(
        "INSERT INTO workspaces (id, name, plan, timezone, require_approval, created_at, updated_at)
         VALUES ($1, $2, $3, 'UTC', 0, $4, $4)
         RETURNING id, name, plan, timezone, require_approval, created_at, updated_at",
    )
    .bind(WorkspaceId::generate().as_str())
    .bind(name)
    .bind(plan)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(unique_to_conflict("a workspace with this name"))?;
    workspace_from_row(&row)
}

impl Store {
    /// Whether the install has a user yet (sign-up without an invitation is for the first).
    pub async fn has_users(&self) -> Result<bool> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM install")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// The install's first user and their workspace, as its owner. [`StoreError::Conflict`]
    /// when the install already has its first user (two racing sign-ups: one wins).
    pub async fn create_first_user(
        &self,
        user: &User,
        workspace_name: &str,
        plan: &str,
        now: i64,
    ) -> Result<Workspace> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO install (id, owner_user_id, created_at) VALUES (1, $1, $2)")
            .bind(user.id.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(unique_to_conflict("the install's first user"))?;
        insert_user(&mut tx, user).await?;
        let ws = insert_workspace(&mut tx, workspace_name, plan, now).await?;
        insert_membership(&mut tx, &ws.id, &user.id, Role::Owner, now).await?;
        tx.commit().await?;
        Ok(ws)
    }

    /// A user made by an operator (`crier admin user create`), with a role in `ws` if given.
    /// Also counts as the install's first user when there is none yet.
    pub async fn create_user(
        &self,
        user: &User,
        membership: Option<(&WorkspaceId, Role)>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        insert_user(&mut tx, user).await?;
        sqlx::query(
            "INSERT INTO install (id, owner_user_id, created_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(user.id.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if let Some((ws, role)) = membership {
            insert_membership(&mut tx, ws, &user.id, role, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        self.user_where("email_key", &email_key(email)).await
    }

    pub async fn user_by_id(&self, id: &UserId) -> Result<Option<User>> {
        self.user_where("id", id.as_str()).await
    }

    /// The user whose `column` (a fixed name, never input) is `value`.
    async fn user_where(&self, column: &'static str, value: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE {column} = $1"
        )))
        .bind(value)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// Sets a user's password hash if it is still `expected` (a password change racing
    /// another one loses), and ends every session of the user but `keep`.
    pub async fn set_password(
        &self,
        user: &UserId,
        expected: &str,
        hash: &str,
        keep: Option<&SessionId>,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $3, updated_at = $4
             WHERE id = $1 AND password_hash = $2",
        )
        .bind(user.as_str())
        .bind(expected)
        .bind(hash)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if changed {
            end_sessions_tx(&mut tx, user, keep, now).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// The workspaces a user belongs to, oldest membership first.
    pub async fn memberships(&self, user: &UserId) -> Result<Vec<Membership>> {
        let rows = sqlx::query(
            "SELECT w.id, w.name, w.plan, w.timezone, w.require_approval, w.created_at,
                    w.updated_at, m.role AS role, m.created_at AS member_since
             FROM memberships m JOIN workspaces w ON w.id = m.workspace_id
             WHERE m.user_id = $1 ORDER BY m.created_at, w.id LIMIT 500",
        )
        .bind(user.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Membership {
                    workspace: workspace_from_row(r)?,
                    role: role_from(r, "role")?,
                    created_at: r.try_get("member_since")?,
                })
            })
            .collect()
    }

    /// A new workspace owned by `user`, unless they own `max_owned` already (`None`; counted
    /// with their row locked on PostgreSQL, so two at once cannot both pass the last place).
    pub async fn create_workspace_for(
        &self,
        user: &UserId,
        name: &str,
        plan: &str,
        max_owned: u32,
        now: i64,
    ) -> Result<Option<Workspace>> {
        let mut tx = self.begin().await?;
        if self.backend() == crate::Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        }
        let owned: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships WHERE user_id = $1 AND role = 'owner'",
        )
        .bind(user.as_str())
        .fetch_one(&mut *tx)
        .await?;
        if owned >= i64::from(max_owned) {
            return Ok(None);
        }
        let ws = insert_workspace(&mut tx, name, plan, now).await?;
        insert_membership(&mut tx, &ws.id, user, Role::Owner, now).await?;
        tx.commit().await?;
        Ok(Some(ws))
    }

    pub async fn rename_workspace(
        &self,
        ws: &WorkspaceId,
        name: &str,
        now: i64,
    ) -> Result<Option<Workspace>> {
        let row = sqlx::query(
            "UPDATE workspaces SET name = $2, updated_at = $3 WHERE id = $1
             RETURNING id, name, plan, timezone, require_approval, created_at, updated_at",
        )
        .bind(ws.as_str())
        .bind(name)
        .bind(now)
        .fetch_optional(&self.write)
        .await
        .map_err(unique_to_conflict("a workspace with this name"))?;
        row.as_ref().map(workspace_from_row).transpose()
    }

    /// A workspace's members, owners first.
    pub async fn members(&self, ws: &WorkspaceId) -> Result<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.name, m.role, m.created_at
             FROM memberships m JOIN users u ON u.id = m.user_id
             WHERE m.workspace_id = $1 ORDER BY m.created_at, u.id LIMIT 1000",
        )
        .bind(ws.as_str())
        .fetch_all(&self.read)
        .await?;
        let mut members = rows
            .iter()
            .map(|r| {
                Ok(Member {
                    user_id: UserId::from_trusted(r.try_get("id")?),
                    email: r.try_get("email")?,
                    name: r.try_get("name")?,
                    role: role_from(r, "role")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        members.sort_by_key(|m| std::cmp::Reverse(m.role));
        Ok(members)
    }

    /// Changes a member's role from `from` to `to`. Refused (false) when the role is no longer
    /// `from`, or when it would leave the workspace without an owner. With `end_access` (the
    /// new role lacks scopes of the old), what acts for them in person ends in the same
    /// transaction (see `revoke_member_access_tx`).
    pub async fn change_role(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        (from, to): (Role, Role),
        end_access: bool,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        lock_owners_tx(self, &mut tx, ws).await?;
        let done = sqlx::query(
            "UPDATE memberships SET role = $4
             WHERE workspace_id = $1 AND user_id = $2 AND role = $3
               AND ($3 <> 'owner' OR $4 = 'owner' OR (SELECT COUNT(*) FROM memberships o
                     WHERE o.workspace_id = $1 AND o.role = 'owner') > 1)",
        )
        .bind(ws.as_str())
        .bind(user.as_str())
        .bind(from.as_str())
        .bind(to.as_str())
        .execute(&mut *tx)
        .await?;
        self.end_membership_access(tx, done.rows_affected() == 1 && end_access, ws, user, now)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes a member holding `role`, and what acts for them in person (their apps' grants,
    /// their devices' keys) in the same transaction; refused (false) for the last owner or a
    /// changed role.
    pub async fn remove_member(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        role: Role,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        lock_owners_tx(self, &mut tx, ws).await?;
        let done = sqlx::query(
            "DELETE FROM memberships
             WHERE workspace_id = $1 AND user_id = $2 AND role = $3
               AND ($3 <> 'owner' OR (SELECT COUNT(*) FROM memberships o
                     WHERE o.workspace_id = $1 AND o.role = 'owner') > 1)",
        )
        .bind(ws.as_str())
        .bind(user.as_str())
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
        let removed = done.rows_affected() == 1;
        self.end_membership_access(tx, removed, ws, user, now)
            .await?;
        Ok(removed)
    }

    /// Commits a membership change, first ending what acts for the member in person when
    /// `end` says so; the key changes are announced once it is committed.
    async fn end_membership_access(
        &self,
        mut tx: Tx,
        end: bool,
        ws: &WorkspaceId,
        user: &UserId,
        now: i64,
    ) -> Result<()> {
        let digests = match end {
            true => {
                crate::oauth_server::revoke_member_access_tx(self, &mut tx, ws, user, now).await?
            }
            false => Vec::new(),
        };
        tx.commit().await?;
        for d in &digests {
            self.key_changed(d);
        }
        Ok(())
    }

    pub async fn insert_session(&self, s: &Session, digest: &KeyDigest) -> Result<()> {
        sqlx::query(
            "INSERT INTO sessions (id, digest, user_id, csrf, created_at, expires_at, user_agent, ip)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.id.as_str())
        .bind(digest.to_hex())
        .bind(s.user_id.as_str())
        .bind(&s.csrf)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The session with this token digest and its user, whatever its state.
    pub async fn session_by_digest(&self, digest: &KeyDigest) -> Result<Option<(Session, User)>> {
        let row = sqlx::query(
            "SELECT s.id, s.user_id, s.csrf, s.created_at, s.expires_at, s.ended_at,
                    s.user_agent, s.ip, u.email, u.name, u.password_hash,
                    u.created_at AS user_created_at, u.updated_at AS user_updated_at
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.digest = $1",
        )
        .bind(digest.to_hex())
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            let session = session_from_row(&r)?;
            let user = User {
                id: session.user_id.clone(),
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                password_hash: r.try_get("password_hash")?,
                created_at: r.try_get("user_created_at")?,
                updated_at: r.try_get("user_updated_at")?,
            };
            Ok((session, user))
        })
        .transpose()
    }

    /// A user's sessions that are still open, newest first.
    pub async fn open_sessions(&self, user: &UserId, now: i64) -> Result<Vec<Session>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions
             WHERE user_id = $1 AND ended_at IS NULL AND expires_at > $2
             ORDER BY id DESC LIMIT 200"
        )))
        .bind(user.as_str())
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Ends one session (logout); false when it had already ended.
    pub async fn end_session(&self, id: &SessionId, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
                .bind(id.as_str())
                .bind(now)
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every open session of a user but `keep` ("log out everywhere"); how many ended.
    pub async fn end_sessions(
        &self,
        user: &UserId,
        keep: Option<&SessionId>,
        now: i64,
    ) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = end_sessions_tx(&mut tx, user, keep, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Deletes sessions that ended or expired before `before` (kept a while for the record).
    pub async fn purge_sessions(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at < $1 OR ended_at < $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn insert_invitation(&self, inv: &Invitation, digest: &KeyDigest) -> Result<()> {
        sqlx::query(
            "INSERT INTO invitations (id, workspace_id, digest, role, email, created_by,
                created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(inv.id.as_str())
        .bind(inv.workspace_id.as_str())
        .bind(digest.to_hex())
        .bind(inv.role.as_str())
        .bind(inv.email.as_deref())
        .bind(inv.created_by.as_str())
        .bind(inv.created_at)
        .bind(inv.expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// An invitation that can still be accepted (not used, revoked or expired), by its token.
    pub async fn open_invitation(
        &self,
        digest: &KeyDigest,
        now: i64,
    ) -> Result<Option<(Invitation, Workspace)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {}, w.name AS ws_name, w.plan AS ws_plan, w.timezone AS ws_timezone,
                    w.require_approval AS ws_require_approval,
                    w.created_at AS ws_created_at, w.updated_at AS ws_updated_at
             FROM invitations i JOIN workspaces w ON w.id = i.workspace_id
             WHERE i.digest = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL
               AND i.expires_at > $2",
            INVITATION_COLUMNS
                .split(", ")
                .map(|c| format!("i.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(digest.to_hex())
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            let inv = invitation_from_row(&r)?;
            let ws = Workspace {
                id: inv.workspace_id.clone(),
                name: r.try_get("ws_name")?,
                plan: r.try_get("ws_plan")?,
                timezone: r.try_get("ws_timezone")?,
                require_approval: r.try_get::<i64, _>("ws_require_approval")? != 0,
                created_at: r.try_get("ws_created_at")?,
                updated_at: r.try_get("ws_updated_at")?,
            };
            Ok((inv, ws))
        })
        .transpose()
    }

    /// A workspace's invitations that are still open, newest first.
    pub async fn open_invitations(&self, ws: &WorkspaceId, now: i64) -> Result<Vec<Invitation>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations
             WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL
               AND expires_at > $2 ORDER BY id DESC LIMIT 200"
        )))
        .bind(ws.as_str())
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(invitation_from_row).collect()
    }

    pub async fn revoke_invitation(
        &self,
        ws: &WorkspaceId,
        id: &InvitationId,
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE invitations SET revoked_at = $3
             WHERE workspace_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(ws.as_str())
        .bind(id.as_str())
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Accepts an open invitation for `user` (made in the same transaction when `new_user`):
    /// the invitation is used only if it is still open at `now`, and the membership is made
    /// with it, so an invitation makes one membership at most.
    pub async fn accept_invitation(
        &self,
        digest: &KeyDigest,
        user: &UserId,
        new_user: Option<&User>,
        now: i64,
    ) -> Result<std::result::Result<Invitation, InvitationRefusal>> {
        let mut tx = self.begin().await?;
        if let Some(u) = new_user {
            insert_user(&mut tx, u).await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invitations SET accepted_at = $2, accepted_by = $3
             WHERE digest = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2
             RETURNING {INVITATION_COLUMNS}"
        )))
        .bind(digest.to_hex())
        .bind(now)
        .bind(user.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Err(InvitationRefusal::Invalid));
        };
        let inv = invitation_from_row(&row)?;
        match insert_membership(&mut tx, &inv.workspace_id, user, inv.role, now).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Ok(Err(InvitationRefusal::AlreadyMember)),
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        Ok(Ok(inv))
    }
}

async fn end_sessions_tx(
    tx: &mut Tx,
    user: &UserId,
    keep: Option<&SessionId>,
    now: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = $3
         WHERE user_id = $1 AND ended_at IS NULL AND ($2 IS NULL OR id <> $2)",
    )
    .bind(user.as_str())
    .bind(keep.map(|k| k.as_str()))
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Whether `user` is, within `tx`, a member of `ws` with `role`, the role something that acts
/// for them (an app's grant, a device's key) was checked against. On PostgreSQL the membership
/// is locked until `tx` ends (on SQLite a write transaction is the only writer), so a removal
/// or a role change comes either before (and this is false) or after what `tx` records (and
/// ends it with the member's other access): never between the check and the write, leaving
/// something nobody revokes.
pub(crate) async fn still_member_tx(
    store: &Store,
    tx: &mut Tx,
    ws: &WorkspaceId,
    user: &UserId,
    role: Role,
) -> Result<bool> {
    let held: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT role FROM memberships WHERE workspace_id = $1 AND user_id = $2 {}",
        store.for_share()
    )))
    .bind(ws.as_str())
    .bind(user.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(held.as_deref() == Some(role.as_str()))
}

/// Locks a workspace's owners' memberships until `tx` ends (PostgreSQL; on SQLite a write
/// transaction is the only writer), so two changes that each count "more than one owner"
/// (two owners removing each other, or lowering each other, at once) are decided one after
/// the other and cannot leave the workspace without one.
async fn lock_owners_tx(store: &Store, tx: &mut Tx, ws: &WorkspaceId) -> Result<()> {
    if store.backend() == crate::Backend::Postgres {
        sqlx::query(
            "SELECT user_id FROM memberships WHERE workspace_id = $1 AND role = 'owner'
             FOR UPDATE",
        )
        .bind(ws.as_str())
        .fetch_all(&mut **tx)
        .await?;
    }
    Ok(())
}
