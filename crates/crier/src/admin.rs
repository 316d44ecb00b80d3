//! `crier admin`: operator commands that work directly on storage (no key needed), exactly as
//! the contract's command-line section says, so tests and operators can script them.

use clap::Subcommand;
use crier_api::keys::{self, CreateKey, KeyObject, RateLimitInput};
use crier_core::ids::KeyId;
use crier_core::{Clock, KeyMode, Scope, SystemClock};
use crier_store::{Actor, AuditEntry, Store, Workspace};
use serde_json::json;

use crate::config::Settings;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Workspaces.
    Workspace {
        #[command(subcommand)]
        command: WorkspaceCommand,
    },
    /// API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Dashboard users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The keys that seal stored secrets (`secret_keys`).
    SecretKeys {
        #[command(subcommand)]
        command: SecretKeysCommand,
    },
}

#[derive(Subcommand)]
pub enum SecretKeysCommand {
    /// Seal again, with the current key (the first of `secret_keys`), every stored secret that
    /// an older key sealed: network credentials, webhook signing secrets and the clients
    /// registered on per-instance networks. Run it once every node has the new key in front
    /// (DEPLOYMENT.md); it says what is left, and once nothing is left the older keys can be
    /// taken out of `secret_keys`. Fails when some stored secrets do not open with these keys
    /// (they need the key they were sealed with).
    Reseal,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user (for installs without the sign-up page); the password is read from
    /// standard input, never from the command line.
    Create {
        #[arg(long)]
        email: String,
        /// Their display name (default: the part of the email before `@`).
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (its first line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// A workspace (id or name) to make them a member of.
        #[arg(long)]
        workspace: Option<String>,
        /// Their role there: owner, admin or member (default member).
        #[arg(long, requires = "workspace")]
        role: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        name: String,
        /// Its plan (default: the configured default plan).
        #[arg(long)]
        plan: Option<String>,
    },
    /// List workspaces.
    List,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a key; its secret is printed once.
    Create {
        /// The workspace's id or name.
        #[arg(long)]
        workspace: String,
        /// Scopes, comma-separated or repeated; `all` for every scope.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        #[arg(long)]
        name: Option<String>,
        /// A test-mode key (`sk_test_`).
        #[arg(long)]
        test: bool,
        #[arg(long)]
        per_minute: Option<u32>,
        #[arg(long)]
        per_day: Option<u32>,
        /// Limit the key to these brands (`brd_…`, comma-separated or repeated) of the
        /// workspace and the key's mode.
        #[arg(long = "brand", value_delimiter = ',')]
        brands: Vec<String>,
        /// Limit the key to these accounts (`acct_…`), besides its brands' accounts.
        #[arg(long = "account", value_delimiter = ',')]
        accounts: Vec<String>,
    },
    /// List a workspace's keys.
    List {
        #[arg(long)]
        workspace: String,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key's id (`key_…`).
        id: String,
        #[arg(long)]
        workspace: String,
    },
}

fn workspace_json(ws: &Workspace) -> serde_json::Value {
    json!({
        "id": ws.id.as_str(),
        "object": "workspace",
        "name": ws.name,
        "plan": ws.plan,
        "timezone": ws.timezone,
        "require_approval": ws.require_approval,
        "created_at": crier_core::clock::from_ms(ws.created_at),
    })
}

async fn workspace(store: &Store, id_or_name: &str) -> Result<Workspace, String> {
    store
        .find_workspace(id_or_name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("workspace: no workspace with id or name `{id_or_name}`"))
}

fn print(json_out: bool, value: &serde_json::Value, human: String) {
    if json_out {
        println!("{value}");
    } else {
        println!("{human}");
    }
}

/// `crier admin secret-keys reseal`: passes until one seals nothing more.
async fn reseal(settings: &Settings, store: &Store, json_out: bool) -> Result<(), String> {
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
    let app = crate::compose(store, &clock, settings)?;
    let mut total = crier_app::reseal::Pass::default();
    let last = loop {
        let pass = crier_app::reseal::reseal_all(&app)
            .await
            .map_err(|e| e.message.into_owned())?;
        total.accounts.sealed_again += pass.accounts.sealed_again;
        total.webhook_endpoints.sealed_again += pass.webhook_endpoints.sealed_again;
        total.oauth_clients.sealed_again += pass.oauth_clients.sealed_again;
        if pass.sealed_again() == 0 {
            break pass;
        }
    };
    let count = |r: crier_app::reseal::Resealed, last: crier_app::reseal::Resealed| json!({"sealed_again": r.sealed_again, "left_unopened": last.unopened});
    let value = json!({
        "current_key": app.keyring().current_id(),
        "accounts": count(total.accounts, last.accounts),
        "webhook_endpoints": count(total.webhook_endpoints, last.webhook_endpoints),
        "oauth_clients": count(total.oauth_clients, last.oauth_clients),
    });
    let human = format!(
        "sealed again with key {}: {} accounts, {} webhook endpoints, {} OAuth clients\n\
         left that these keys do not open: {}",
        app.keyring().current_id(),
        total.accounts.sealed_again,
        total.webhook_endpoints.sealed_again,
        total.oauth_clients.sealed_again,
        last.unopened(),
    );
    print(json_out, &value, human);
    if last.unopened() > 0 {
        return Err(format!(
            "{} stored secrets do not open with these secret_keys (accounts {}, webhook \
             endpoints {}, OAuth clients {}): add the key they were sealed with",
            last.unopened(),
            last.accounts.unopened,
            last.webhook_endpoints.unopened,
            last.oauth_clients.unopened
        ));
    }
    Ok(())
}

/// `json`: the global `--json` (`crier admin … --json` as before).
pub async fn run(settings: &Settings, command: AdminCommand, json_out: bool) -> Result<(), String> {
    let store = crate::open_store(settings).await?;
    let now = SystemClock.now_ms();
    let result = match command {
        AdminCommand::Workspace { command } => match command {
            WorkspaceCommand::Create { name, plan } => {
                let plan = plan.unwrap_or_else(|| settings.default_plan.clone());
                if !settings.api.plans.contains_key(&plan) {
                    return Err(format!("plan: no plan named `{plan}`"));
                }
                let name = name.trim();
                if name.is_empty() || name.chars().count() > 100 {
                    return Err("name: must be 1 to 100 characters".into());
                }
                let ws = store
                    .create_workspace(name, &plan, now)
                    .await
                    .map_err(|e| format!("workspace `{name}`: {e}"))?;
                print(
                    json_out,
                    &workspace_json(&ws),
                    format!(
                        "created workspace {} ({}) on plan {}",
                        ws.name, ws.id, ws.plan
                    ),
                );
                Ok(())
            }
            WorkspaceCommand::List => {
                let all = store.list_workspaces().await.map_err(|e| e.to_string())?;
                let value = json!({"data": all.iter().map(workspace_json).collect::<Vec<_>>(), "has_more": false});
                let human = all
                    .iter()
                    .map(|w| format!("{}  {}  {}", w.id, w.name, w.plan))
                    .collect::<Vec<_>>()
                    .join("\n");
                print(json_out, &value, human);
                Ok(())
            }
        },
        AdminCommand::User { command } => user_command(settings, &store, command, json_out).await,
        AdminCommand::SecretKeys {
            command: SecretKeysCommand::Reseal,
        } => reseal(settings, &store, json_out).await,
        AdminCommand::Key { command } => match command {
            KeyCommand::Create {
                workspace: ws,
                scopes,
                name,
                test,
                per_minute,
                per_day,
                brands,
                accounts,
            } => {
                let ws = workspace(&store, &ws).await?;
                let plan = settings
                    .api
                    .plans
                    .get(&ws.plan)
                    .cloned()
                    .map(|mut p| {
                        p.name = ws.plan.clone();
                        p
                    })
                    .ok_or_else(|| format!("workspace's plan `{}` is not configured", ws.plan))?;
                let scopes = if scopes.iter().any(|s| s == "all") {
                    Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect()
                } else {
                    scopes
                };
                let req = CreateKey {
                    name,
                    scopes,
                    mode: Some(if test { KeyMode::Test } else { KeyMode::Live }),
                    rate_limit: Some(RateLimitInput {
                        per_minute,
                        per_day,
                    }),
                    allowed_brand_ids: Some(brands),
                    allowed_account_ids: Some(accounts),
                    ..CreateKey::default()
                };
                let refused = |e: crier_api::error::ApiError| {
                    format!("{}: {}", e.param.as_deref().unwrap_or("key"), e.message)
                };
                let (mut row, secret) =
                    keys::new_key(&ws.id, req, &plan, None, now).map_err(refused)?;
                keys::check_reach(&store, &mut row, &[], None, None)
                    .await
                    .map_err(refused)?;
                let audit = AuditEntry::new(
                    &ws.id,
                    Actor::Cli,
                    "key.created",
                    row.id.as_str(),
                    None,
                    json!({"name": row.name, "scopes": row.scopes.names(), "mode": row.mode.as_str()}),
                    now,
                );
                store
                    .insert_key(&row, &audit)
                    .await
                    .map_err(|e| e.to_string())?;
                let obj = KeyObject::from_row(&row, Some(&secret));
                print(
                    json_out,
                    &serde_json::to_value(&obj).expect("key object"),
                    format!(
                        "created key {} in {}\n\n  {}\n\nThis is the only time the key is shown; store it now.",
                        row.id,
                        ws.name,
                        secret.expose()
                    ),
                );
                Ok(())
            }
            KeyCommand::List { workspace: ws } => {
                let ws = workspace(&store, &ws).await?;
                let mut all = Vec::new();
                let mut offset = 0;
                loop {
                    let page = store
                        .list_keys(&ws.id, None, 50, offset)
                        .await
                        .map_err(|e| e.to_string())?;
                    offset += page.items.len() as u32;
                    all.extend(page.items);
                    if !page.has_more {
                        break;
                    }
                }
                let objs: Vec<KeyObject> =
                    all.iter().map(|k| KeyObject::from_row(k, None)).collect();
                let human = all
                    .iter()
                    .map(|k| {
                        format!(
                            "{}  {}…  {}  {}{}",
                            k.id,
                            k.prefix,
                            k.name,
                            k.scopes.names().join(","),
                            if k.revoked_at.is_some() {
                                "  (revoked)"
                            } else {
                                ""
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                print(json_out, &json!({"data": objs, "has_more": false}), human);
                Ok(())
            }
            KeyCommand::Revoke { id, workspace: ws } => {
                let ws = workspace(&store, &ws).await?;
                let key_id = KeyId::parse(&id).ok_or_else(|| format!("id: no key `{id}`"))?;
                let audit =
                    AuditEntry::new(&ws.id, Actor::Cli, "key.revoked", &id, None, json!({}), now);
                let row = store
                    .revoke_key(&ws.id, &key_id, now, &audit)
                    .await
                    .map_err(|e| e.to_string())?;
                match row {
                    Some(row) => {
                        print(
                            json_out,
                            &serde_json::to_value(KeyObject::from_row(&row, None))
                                .expect("key object"),
                            format!("revoked key {} ({}…)", row.id, row.prefix),
                        );
                        Ok(())
                    }
                    // Not a key of the key list: perhaps a connected app's (an OAuth grant).
                    None => match store
                        .revoke_app_grant(Some(&ws.id), &key_id, now, Some(&audit))
                        .await
                    {
                        Ok(true) => {
                            print(
                                json_out,
                                &json!({"id": id, "object": "connected_app", "revoked": true}),
                                format!("revoked connected app {id} (an OAuth grant)"),
                            );
                            Ok(())
                        }
                        Ok(false) => Err(format!("id: no key `{id}` in workspace {}", ws.name)),
                        Err(e) => Err(e.to_string()),
                    },
                }
            }
        },
    };
    store.close().await;
    result
}

async fn user_command(
    settings: &Settings,
    store: &Store,
    command: UserCommand,
    json_out: bool,
) -> Result<(), String> {
    let UserCommand::Create {
        email,
        name,
        password_stdin: _,
        workspace: ws,
        role,
    } = command;
    let role = match role.as_deref() {
        None => crier_core::Role::Member,
        Some(r) => crier_core::Role::parse(r)
            .ok_or_else(|| format!("role: `{r}` is not owner, admin or member"))?,
    };
    let ws = match ws {
        Some(w) => Some(workspace(store, &w).await?),
        None => None,
    };
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| format!("password: cannot read standard input: {e}"))?;
    let password = password.trim_end_matches(['\n', '\r']);
    let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or("").to_owned());
    let app = crier_app::App::new(
        store.clone(),
        std::sync::Arc::new(SystemClock),
        crier_networks::Networks::default(),
        &settings.api.plans,
        std::sync::Arc::default(),
    );
    let user = app
        .users()
        .create(&email, &name, password, ws.as_ref().map(|w| (&w.id, role)))
        .await
        .map_err(|e| match &e.param {
            Some(p) => format!("{p}: {}", e.message),
            None => e.message.to_string(),
        })?;
    let value = json!({
        "id": user.id.as_str(),
        "object": "user",
        "email": user.email,
        "name": user.name,
        "workspace_id": ws.as_ref().map(|w| w.id.as_str()),
        "role": ws.as_ref().map(|_| role.as_str()),
        "created_at": crier_core::clock::from_ms(user.created_at),
    });
    let human = match &ws {
        Some(w) => format!(
            "created user {} ({}), {} of {}",
            user.email,
            user.id,
            role.as_str(),
            w.name
        ),
        None => format!("created user {} ({})", user.email, user.id),
    };
    print(json_out, &value, human);
    Ok(())
}
