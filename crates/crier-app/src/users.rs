//! People: sign-up, passwords, sessions, workspaces and their members, invitations. The
//! dashboard, `POST /v1/auth/login` and `crier admin user create` all come here.
//!
//! - The first user of an install signs up freely and becomes the owner of a new workspace;
//!   everyone after joins through an invitation link (single use, expiring) or is made by an
//!   operator.
//! - Passwords are hashed with Argon2id off the async runtime. A login with an unknown email
//!   costs the same hash as one with a wrong password, and both get the same answer.
//! - A session is a `sess_…` token (stored as its SHA-256 digest) with a CSRF token, 12 hours
//!   by default; logout ends it, "log out everywhere" and a password change end the others.
//! - Roles (`crier_core::Role`) decide what a session may do and whom a member may manage.
//!   Throttling logins (per account and per address) is the HTTP edge's (`crier_api::auth`).

use std::sync::LazyLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash::rand_core::OsRng};
use crier_core::ids::{InvitationId, SessionId, UserId, WorkspaceId};
use crier_core::keys::{is_token, random_token};
use crier_core::{ErrorCode, KeyDigest, Role};
use crier_store::{
    Invitation, InvitationRefusal, Membership, Session, StoreError, User, Workspace,
};

use crate::{App, AppError, AppResult};

pub const SESSION_PREFIX: &str = "sess_";
pub const INVITATION_PREFIX: &str = "inv_";
pub const MIN_PASSWORD: usize = 10;
/// Longer passwords are refused rather than hashed (Argon2 reads every byte).
pub const MAX_PASSWORD: usize = 256;
pub const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 100;

/// Sessions and invitations as the operator configured them.
#[derive(Debug, Clone)]
pub struct UserSettings {
    /// The plan of workspaces that users create.
    pub default_plan: String,
    pub session_ttl_ms: i64,
    pub invitation_ttl_ms: i64,
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            default_plan: "self-hosted".into(),
            session_ttl_ms: 12 * 3600 * 1000,
            invitation_ttl_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// A new session: its token (shown once, to be kept by the client) and what it stands for.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub session: Session,
    pub user: User,
}

/// A session that is open now, with its user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub session: Session,
    pub user: User,
}

/// Where a session acts: a workspace the user belongs to, with the user's role there.
#[derive(Debug, Clone)]
pub struct Seat {
    pub workspace: Workspace,
    pub role: Role,
}

/// Sign-up input.
#[derive(Debug, Clone, Default)]
pub struct SignUp {
    pub email: String,
    pub name: String,
    pub password: String,
    /// The new workspace's name (first user only).
    pub workspace_name: Option<String>,
    /// An invitation token (everyone but the first user).
    pub invitation: Option<String>,
}

/// One hash computed once per process, checked against when the email is unknown, so that an
/// unknown email costs what a wrong password costs.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_now("crier dummy password that nobody has").expect("hashing a constant works")
});

fn hash_now(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Argon2id computations at once (each holds 19 MiB for some tens of milliseconds): logins
/// and sign-ups beyond it wait their turn, so a flood of them cannot exhaust memory or the
/// blocking pool. Throttling per address and account at the edge keeps the queue short.
pub const CONCURRENT_HASHES: usize = 4;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_HASHES);

/// Hashes a password with Argon2id on a blocking thread.
pub async fn hash_password(password: &str) -> AppResult<String> {
    let _turn = HASHING.acquire().await.map_err(AppError::internal)?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

async fn verify_password(password: &str, hash: Option<&str>) -> AppResult<bool> {
    let _turn = HASHING.acquire().await.map_err(AppError::internal)?;
    let password = password.to_owned();
    let hash = hash.map(str::to_owned);
    tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_now(&password, &h),
        None => {
            verify_now(&password, &DUMMY_HASH);
            false
        }
    })
    .await
    .map_err(AppError::internal)
}

/// An email address as accepted: trimmed, one `@` with text on both sides, no spaces or
/// control characters, at most 254 characters.
pub fn check_email(email: &str) -> AppResult<String> {
    let e = email.trim();
    let ok = !e.is_empty()
        && e.len() <= MAX_EMAIL
        && e.split('@').count() == 2
        && !e.starts_with('@')
        && !e.ends_with('@')
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(AppError::invalid("email", "Give a valid email address."));
    }
    Ok(e.to_owned())
}

/// A password as accepted: 10 to 256 characters (no other composition rules: length is what
/// makes a password strong).
pub fn check_password(password: &str, param: &str) -> AppResult<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD || password.len() > MAX_PASSWORD {
        return Err(AppError::invalid(
            param,
            format!("A password has {MIN_PASSWORD} to {MAX_PASSWORD} characters."),
        ));
    }
    Ok(())
}

/// A display name (of a person or a workspace): trimmed, 1 to 100 characters, one line.
pub fn check_name(name: &str, param: &str) -> AppResult<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be 1 to {MAX_NAME} characters on one line."),
        ));
    }
    Ok(n.to_owned())
}

fn invalid_login() -> AppError {
    AppError::new(ErrorCode::Unauthorized, "Wrong email or password.")
}

fn invalid_invitation() -> AppError {
    AppError::invalid(
        "invitation",
        "This invitation link is not valid: it was used, revoked or has expired. Ask for a new one.",
    )
}

pub struct Users<'a> {
    pub(crate) app: &'a App,
}

impl Users<'_> {
    fn settings(&self) -> &UserSettings {
        &self.app.0.users
    }

    fn now(&self) -> i64 {
        self.app.clock().now_ms()
    }

    /// Whether sign-up without an invitation is open (the install has no user yet).
    pub async fn first_sign_up_open(&self) -> AppResult<bool> {
        Ok(!self.app.store().has_users().await?)
    }

    /// Signs a person up: the install's first user (with a new workspace they own), or an
    /// invited one (joining the invitation's workspace with its role). Returns the user and
    /// the workspace they start in.
    pub async fn sign_up(&self, input: &SignUp) -> AppResult<(User, Workspace)> {
        let email = check_email(&input.email)?;
        let name = check_name(&input.name, "name")?;
        check_password(&input.password, "password")?;
        let now = self.now();
        let user = User {
            id: UserId::generate(),
            email,
            name,
            password_hash: hash_password(&input.password).await?,
            created_at: now,
            updated_at: now,
        };
        let taken = |e: StoreError| match e {
            StoreError::Conflict(what) if what.contains("email") => AppError::invalid(
                "email",
                "There is already a user with this email; sign in instead.",
            ),
            other => other.into(),
        };
        match &input.invitation {
            Some(token) => {
                let digest = invitation_digest(token).ok_or_else(invalid_invitation)?;
                let store = self.app.store();
                // Read first for its workspace: accepting re-checks it in one transaction.
                let (_, ws) = store
                    .open_invitation(&digest, now)
                    .await?
                    .ok_or_else(invalid_invitation)?;
                match store
                    .accept_invitation(&digest, &user.id, Some(&user), now)
                    .await
                    .map_err(taken)?
                {
                    Ok(_) => Ok((user, ws)),
                    Err(_) => Err(invalid_invitation()),
                }
            }
            None => {
                let ws_name = check_name(
                    input.workspace_name.as_deref().unwrap_or("My workspace"),
                    "workspace_name",
                )?;
                if self.app.store().has_users().await? {
                    return Err(AppError::new(
                        ErrorCode::ForbiddenScope,
                        "Sign-up is by invitation: ask an owner or admin of a workspace for an \
                         invitation link.",
                    ));
                }
                let ws = self
                    .app
                    .store()
                    .create_first_user(&user, &ws_name, &self.settings().default_plan, now)
                    .await
                    .map_err(|e| match e {
                        StoreError::Conflict(what) if what.contains("first user") => AppError::new(
                            ErrorCode::ForbiddenScope,
                            "Sign-up is by invitation: ask an owner or admin for an \
                                 invitation link.",
                        ),
                        other => taken(other),
                    })?;
                Ok((user, ws))
            }
        }
    }

    /// A user made by an operator, optionally with a role in a workspace.
    pub async fn create(
        &self,
        email: &str,
        name: &str,
        password: &str,
        membership: Option<(&WorkspaceId, Role)>,
    ) -> AppResult<User> {
        let email = check_email(email)?;
        let name = check_name(name, "name")?;
        check_password(password, "password")?;
        let now = self.now();
        let user = User {
            id: UserId::generate(),
            email,
            name,
            password_hash: hash_password(password).await?,
            created_at: now,
            updated_at: now,
        };
        self.app
            .store()
            .create_user(&user, membership, now)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(what) if what.contains("email") => {
                    AppError::invalid("email", "There is already a user with this email.")
                }
                other => other.into(),
            })?;
        Ok(user)
    }

    /// Checks an email and password; `401 unauthorized` for either wrong, alike.
    pub async fn check_login(&self, email: &str, password: &str) -> AppResult<User> {
        if email.len() > MAX_EMAIL || password.len() > MAX_PASSWORD {
            return Err(invalid_login());
        }
        let user = self.app.store().user_by_email(email).await?;
        let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        match user {
            Some(u) if ok => Ok(u),
            _ => Err(invalid_login()),
        }
    }

    /// Opens a session for `user`.
    pub async fn start_session(
        &self,
        user: User,
        user_agent: &str,
        ip: &str,
    ) -> AppResult<NewSession> {
        let now = self.now();
        let token = random_token(SESSION_PREFIX);
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            csrf: random_token(""),
            created_at: now,
            expires_at: now + self.settings().session_ttl_ms,
            ended_at: None,
            user_agent: user_agent.chars().take(200).collect(),
            ip: ip.chars().take(64).collect(),
        };
        self.app
            .store()
            .insert_session(&session, &KeyDigest::of(&token))
            .await?;
        Ok(NewSession {
            token,
            session,
            user,
        })
    }

    /// The open session a token names, or `None` (malformed, unknown, ended or expired).
    pub async fn session(&self, token: &str) -> AppResult<Option<ActiveSession>> {
        if !is_token(token, SESSION_PREFIX) {
            return Ok(None);
        }
        let found = self
            .app
            .store()
            .session_by_digest(&KeyDigest::of(token))
            .await?;
        let now = self.now();
        Ok(found.and_then(|(session, user)| {
            (session.ended_at.is_none() && session.expires_at > now)
                .then_some(ActiveSession { session, user })
        }))
    }

    pub async fn end_session(&self, id: &SessionId) -> AppResult<()> {
        self.app.store().end_session(id, self.now()).await?;
        Ok(())
    }

    /// Ends every other session of the user; how many.
    pub async fn end_other_sessions(&self, s: &ActiveSession) -> AppResult<u64> {
        Ok(self
            .app
            .store()
            .end_sessions(&s.user.id, Some(&s.session.id), self.now())
            .await?)
    }

    pub async fn open_sessions(&self, user: &UserId) -> AppResult<Vec<Session>> {
        Ok(self.app.store().open_sessions(user, self.now()).await?)
    }

    /// Changes the password of the session's user (the current one must be right) and ends
    /// the user's other sessions.
    pub async fn change_password(
        &self,
        s: &ActiveSession,
        current: &str,
        new: &str,
    ) -> AppResult<()> {
        check_password(new, "new_password")?;
        if !verify_password(current, Some(&s.user.password_hash)).await? {
            return Err(AppError::invalid(
                "current_password",
                "The current password is wrong.",
            ));
        }
        let hash = hash_password(new).await?;
        let changed = self
            .app
            .store()
            .set_password(
                &s.user.id,
                &s.user.password_hash,
                &hash,
                Some(&s.session.id),
                self.now(),
            )
            .await?;
        if !changed {
            return Err(AppError::conflict(
                "The password was changed meanwhile; sign in again.",
            ));
        }
        Ok(())
    }

    /// The workspaces of a user, oldest membership first.
    pub async fn memberships(&self, user: &UserId) -> AppResult<Vec<Membership>> {
        Ok(self.app.store().memberships(user).await?)
    }

    /// Where a session acts: `wanted` if the user is a member there, else (with no wish) the
    /// user's first workspace. Another workspace is `404 not_found` (it does not exist for
    /// this user).
    pub async fn seat(&self, user: &UserId, wanted: Option<&str>) -> AppResult<Seat> {
        let all = self.memberships(user).await?;
        let found = match wanted {
            Some(id) => all.into_iter().find(|m| m.workspace.id.as_str() == id),
            None => all.into_iter().next(),
        };
        match (found, wanted) {
            (Some(m), _) => Ok(Seat {
                workspace: m.workspace,
                role: m.role,
            }),
            (None, Some(id)) => Err(AppError::not_found("workspace", id)),
            (None, None) => Err(AppError::new(
                ErrorCode::ForbiddenScope,
                "This user belongs to no workspace yet: create one or accept an invitation.",
            )),
        }
    }

    /// A new workspace owned by the user, who may own [`MAX_OWNED_WORKSPACES`] (each comes
    /// with its plan's quotas, so more would multiply them; an operator makes more with
    /// `crier admin workspace create`).
    pub async fn create_workspace(&self, user: &UserId, name: &str) -> AppResult<Workspace> {
        let name = check_name(name, "name")?;
        let plan = &self.settings().default_plan;
        self.app
            .store()
            .create_workspace_for(user, &name, plan, MAX_OWNED_WORKSPACES, self.now())
            .await
            .map_err(name_taken)?
            .ok_or_else(|| {
                AppError::invalid(
                    "name",
                    format!(
                        "You own {MAX_OWNED_WORKSPACES} workspaces, the most one user may \
                         create; an operator can make more with `crier admin workspace create`."
                    ),
                )
            })
    }

    /// Renames the seat's workspace (owners and admins).
    pub async fn rename_workspace(&self, seat: &Seat, name: &str) -> AppResult<Workspace> {
        require_admin(seat)?;
        let name = check_name(name, "name")?;
        self.app
            .store()
            .rename_workspace(&seat.workspace.id, &name, self.now())
            .await
            .map_err(name_taken)?
            .ok_or_else(|| AppError::not_found("workspace", seat.workspace.id.as_str()))
    }

    pub async fn members(&self, seat: &Seat) -> AppResult<Vec<crier_store::Member>> {
        Ok(self.app.store().members(&seat.workspace.id).await?)
    }

    /// Changes a member's role. The seat must manage both the member's role and the new one;
    /// the last owner keeps their role.
    pub async fn change_role(&self, seat: &Seat, user: &UserId, to: Role) -> AppResult<()> {
        let member = self.member(seat, user).await?;
        if !seat.role.manages(member.role) || !seat.role.manages(to) {
            return Err(cannot_manage());
        }
        // A lower role cannot have granted what the apps they allowed and the keys of their
        // devices hold: those end now (with the change), not at their next refresh or expiry.
        let end_access = !member.role.scopes().is_subset_of(to.scopes());
        if !self
            .app
            .store()
            .change_role(
                &seat.workspace.id,
                user,
                (member.role, to),
                end_access,
                self.now(),
            )
            .await?
        {
            return Err(AppError::conflict(
                "The role changed meanwhile, or this is the workspace's last owner.",
            ));
        }
        Ok(())
    }

    /// Removes a member (or, for oneself, leaves). The last owner cannot leave.
    pub async fn remove_member(&self, seat: &Seat, me: &UserId, user: &UserId) -> AppResult<()> {
        let member = self.member(seat, user).await?;
        if user != me && !seat.role.manages(member.role) {
            return Err(cannot_manage());
        }
        // The apps they allowed and their devices acted for them: that ends with their
        // membership, in its transaction. (The workspace's own keys, made in the dashboard or
        // the API, stay.)
        if !self
            .app
            .store()
            .remove_member(&seat.workspace.id, user, member.role, self.now())
            .await?
        {
            return Err(AppError::conflict(
                "The member changed meanwhile, or this is the workspace's last owner.",
            ));
        }
        Ok(())
    }

    async fn member(&self, seat: &Seat, user: &UserId) -> AppResult<crier_store::Member> {
        self.members(seat)
            .await?
            .into_iter()
            .find(|m| &m.user_id == user)
            .ok_or_else(|| AppError::not_found("member", user.as_str()))
    }

    /// An invitation link token into the seat's workspace with `role` (which the seat must
    /// manage). The token is shown once; only its digest is kept.
    pub async fn invite(
        &self,
        seat: &Seat,
        by: &UserId,
        role: Role,
        email: Option<&str>,
    ) -> AppResult<(Invitation, String)> {
        if !seat.role.manages(role) {
            return Err(cannot_manage());
        }
        let email = email
            .filter(|e| !e.trim().is_empty())
            .map(check_email)
            .transpose()?;
        let now = self.now();
        let token = random_token(INVITATION_PREFIX);
        let inv = Invitation {
            id: InvitationId::generate(),
            workspace_id: seat.workspace.id.clone(),
            role,
            email,
            created_by: by.clone(),
            created_at: now,
            expires_at: now + self.settings().invitation_ttl_ms,
            accepted_at: None,
            accepted_by: None,
            revoked_at: None,
        };
        self.app
            .store()
            .insert_invitation(&inv, &KeyDigest::of(&token))
            .await?;
        Ok((inv, token))
    }

    pub async fn open_invitations(&self, seat: &Seat) -> AppResult<Vec<Invitation>> {
        require_admin(seat)?;
        Ok(self
            .app
            .store()
            .open_invitations(&seat.workspace.id, self.now())
            .await?)
    }

    pub async fn revoke_invitation(&self, seat: &Seat, id: &str) -> AppResult<()> {
        require_admin(seat)?;
        let not_found = || AppError::not_found("invitation", id);
        let id = InvitationId::parse(id).ok_or_else(not_found)?;
        if !self
            .app
            .store()
            .revoke_invitation(&seat.workspace.id, &id, self.now())
            .await?
        {
            return Err(not_found());
        }
        Ok(())
    }

    /// The workspace and role an invitation token offers, while it is open.
    pub async fn invitation(&self, token: &str) -> AppResult<(Invitation, Workspace)> {
        let digest = invitation_digest(token).ok_or_else(invalid_invitation)?;
        self.app
            .store()
            .open_invitation(&digest, self.now())
            .await?
            .ok_or_else(invalid_invitation)
    }

    /// A signed-in user accepts an invitation.
    pub async fn accept_invitation(&self, user: &UserId, token: &str) -> AppResult<Invitation> {
        let digest = invitation_digest(token).ok_or_else(invalid_invitation)?;
        match self
            .app
            .store()
            .accept_invitation(&digest, user, None, self.now())
            .await?
        {
            Ok(inv) => Ok(inv),
            Err(InvitationRefusal::AlreadyMember) => Err(AppError::conflict(
                "You are already a member of this workspace.",
            )),
            Err(InvitationRefusal::Invalid) => Err(invalid_invitation()),
        }
    }
}

/// How long ended and expired sessions stay on record (the account page lists open ones only).
pub const SESSION_RECORD_MS: i64 = 30 * 86_400_000;
/// How long a device login stays on record after it expired.
pub const DEVICE_RECORD_MS: i64 = 3_600_000;

impl Users<'_> {
    /// Deletes sessions ended or expired more than 30 days ago, device logins expired more
    /// than an hour ago, and OAuth codes, clients and refresh tokens past use
    /// (`oauth_server::OAuthServer::purge`), so that no table grows without bound (device
    /// logins and OAuth registrations can be made without signing in). Run on a timer; returns how many rows went.
    pub async fn purge(&self) -> AppResult<u64> {
        let now = self.now();
        let store = self.app.store();
        let sessions = store.purge_sessions(now - SESSION_RECORD_MS).await?;
        let devices = store.purge_device_logins(now - DEVICE_RECORD_MS).await?;
        // OAuth codes, clients and refresh tokens can be made without an account too.
        let oauth = self
            .app
            .oauth_server()
            .purge()
            .await
            .map_err(|e| AppError::internal(e.description))?;
        Ok(sessions + devices + oauth)
    }
}

fn invitation_digest(token: &str) -> Option<KeyDigest> {
    is_token(token, INVITATION_PREFIX).then(|| KeyDigest::of(token))
}

fn cannot_manage() -> AppError {
    AppError::new(
        ErrorCode::ForbiddenScope,
        "Your role cannot manage this member or give this role (admins manage admins and \
         members; only owners manage owners).",
    )
}

/// The workspaces one user may own (make in the dashboard) at most.
pub const MAX_OWNED_WORKSPACES: u32 = 100;

fn name_taken(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict(_) => {
            AppError::invalid("name", "There is already a workspace with this name.")
        }
        other => other.into(),
    }
}

/// `403` unless the seat is an owner's or an admin's.
pub fn require_admin(seat: &Seat) -> AppResult<()> {
    if !seat.role.administers() {
        return Err(AppError::new(
            ErrorCode::ForbiddenScope,
            "Only owners and admins of this workspace can do this.",
        ));
    }
    Ok(())
}

impl App {
    /// People: sign-up, sessions, workspaces and members, invitations.
    pub fn users(&self) -> Users<'_> {
        Users { app: self }
    }

    /// With the operator's user settings (default plan of new workspaces, session and
    /// invitation lifetimes).
    pub fn with_users(self, users: UserSettings) -> Self {
        self.edit(|i| i.users = users)
    }
}
