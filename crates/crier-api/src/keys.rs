//! The rules of API keys, shared by the HTTP API and `crier admin`: validation, defaults, and
//! the no-escalation rule.
//!
//! No escalation: a key acting through `keys:write` can only create, change, rotate or revoke
//! keys that are no wider than itself, in every dimension (scopes, rate limits, expiry, IP and
//! origin restrictions, mode, brands and accounts). A new key's omitted restrictions default to
//! the creator's, so the narrowest sensible key is the one you get without asking.
//!
//! Brands and accounts (`allowed_brand_ids`, `allowed_account_ids`) need storage to check, so
//! [`check_reach`] does it after [`new_key`] or [`updated_key`]; the rules are
//! `crier_app::reach`. A key limited to brands or accounts sees, changes, rotates and revokes
//! only keys within its reach (the others are `404` to it): keys limited to brands it is
//! allowed and accounts it reaches.

use crier_core::ids::{KeyId, WorkspaceId};
use crier_core::net::{self, OriginRule};
use crier_core::plans::{DEFAULT_PER_DAY, DEFAULT_PER_MINUTE};
use crier_core::scopes::ScopeSet;
use crier_core::{ErrorCode, KeyMode, Plan, SecretKey, clock::from_ms};
use crier_store::KeyRow;
use ipnet::IpNet;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use crate::auth::cache::KeyRecord;
use crate::error::ApiError;
pub use crier_store::views::{KeyObject, RateLimitObject};

pub const MAX_NAME: usize = 100;
pub const MAX_DESCRIPTION: usize = 500;
pub const MAX_SCOPES: usize = 64;
pub const MAX_RESTRICTIONS: usize = 100;
/// The longest overlap a rotation may give the old key.
pub const MAX_OVERLAP_SECONDS: u32 = 7 * 24 * 3600;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitInput {
    /// Requests per minute, from 1 up to the plan's ceiling (default 60).
    #[schema(minimum = 1, maximum = 1000000)]
    pub per_minute: Option<u32>,
    /// Requests per day, from 1 up to the plan's ceiling (default 10,000).
    #[schema(minimum = 1, maximum = 1000000000)]
    pub per_day: Option<u32>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// A name to recognise the key by (default "API key").
    #[schema(schema_with = crate::openapi::fields::key_name)]
    pub name: Option<String>,
    #[schema(schema_with = crate::openapi::fields::key_description)]
    pub description: Option<String>,
    /// Scopes or aliases; stored as what they expand to. At least one.
    #[schema(schema_with = crate::openapi::fields::scopes)]
    pub scopes: Vec<String>,
    /// `live` or `test`; defaults to the creating key's mode.
    #[schema(schema_with = crate::openapi::fields::key_mode)]
    pub mode: Option<KeyMode>,
    pub rate_limit: Option<RateLimitInput>,
    /// IPv4/IPv6 addresses or CIDR blocks; defaults to the creating key's.
    #[schema(schema_with = crate::openapi::fields::allowed_ips)]
    pub allowed_ips: Option<Vec<String>>,
    /// Browser origins such as `https://app.example.com` or `https://*.example.com`.
    #[schema(schema_with = crate::openapi::fields::allowed_origins)]
    pub allowed_origins: Option<Vec<String>>,
    /// Brands the key is limited to; defaults to the creating key's.
    #[schema(schema_with = crate::openapi::fields::allowed_brand_ids)]
    pub allowed_brand_ids: Option<Vec<String>>,
    /// Accounts the key is limited to (besides its brands' accounts); defaults to the creating
    /// key's.
    #[schema(schema_with = crate::openapi::fields::allowed_account_ids)]
    pub allowed_account_ids: Option<Vec<String>>,
    /// When the key stops working; must be in the future. Omitted: the creating key's expiry;
    /// `null`: never (refused when the creating key itself expires).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<Timestamp>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[schema(schema_with = crate::openapi::fields::key_name)]
    pub name: Option<String>,
    #[schema(schema_with = crate::openapi::fields::key_description)]
    pub description: Option<String>,
    #[schema(schema_with = crate::openapi::fields::scopes_optional)]
    pub scopes: Option<Vec<String>>,
    pub rate_limit: Option<RateLimitInput>,
    #[schema(schema_with = crate::openapi::fields::allowed_ips)]
    pub allowed_ips: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::fields::allowed_origins)]
    pub allowed_origins: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::fields::allowed_brand_ids)]
    pub allowed_brand_ids: Option<Vec<String>>,
    #[schema(schema_with = crate::openapi::fields::allowed_account_ids)]
    pub allowed_account_ids: Option<Vec<String>>,
    /// A new expiry, or `null` for none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<Timestamp>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// How long the old key keeps working, 0 (default) to 604800 (7 days).
    #[schema(minimum = 0, maximum = 604800)]
    pub overlap_seconds: Option<u32>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn escalation(message: String) -> ApiError {
    ApiError::new(ErrorCode::ForbiddenScope, message)
}

fn text(param: &str, value: &str, max: usize, required: bool) -> Result<String, ApiError> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must not be empty."),
        ));
    }
    // The bound is on what was sent, as the OpenAPI's maxLength says (padding counts).
    if value.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` must be at most {max} characters, without control characters."),
        ));
    }
    Ok(v.to_owned())
}

fn scopes(list: &[String]) -> Result<ScopeSet, ApiError> {
    if list.is_empty() || list.len() > MAX_SCOPES {
        return Err(ApiError::invalid(
            "scopes",
            format!("`scopes` must list 1 to {MAX_SCOPES} scopes."),
        ));
    }
    ScopeSet::parse_list(list.iter().map(String::as_str))
        .map_err(|bad| ApiError::invalid("scopes", format!("Unknown scope `{bad}`.")))
}

fn ip_rules(list: &[String]) -> Result<Vec<IpNet>, ApiError> {
    if list.len() > MAX_RESTRICTIONS {
        return Err(ApiError::invalid(
            "allowed_ips",
            format!("`allowed_ips` may hold at most {MAX_RESTRICTIONS} entries."),
        ));
    }
    list.iter()
        .map(|s| {
            net::parse_ip_rule(s).ok_or_else(|| {
                ApiError::invalid(
                    "allowed_ips",
                    format!("`{s}` is not an IPv4/IPv6 address or CIDR block."),
                )
            })
        })
        .collect()
}

fn origin_rules(list: &[String]) -> Result<Vec<OriginRule>, ApiError> {
    if list.len() > MAX_RESTRICTIONS {
        return Err(ApiError::invalid(
            "allowed_origins",
            format!("`allowed_origins` may hold at most {MAX_RESTRICTIONS} entries."),
        ));
    }
    list.iter()
        .map(|s| {
            OriginRule::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "allowed_origins",
                    format!(
                        "`{s}` is not an origin such as `https://app.example.com` or \
                         `https://*.example.com`."
                    ),
                )
            })
        })
        .collect()
}

fn limit(param: &str, value: u32, ceiling: u32, plan: &Plan) -> Result<u32, ApiError> {
    if value == 0 || value > ceiling {
        return Err(ApiError::invalid(
            param,
            format!(
                "`{param}` must be from 1 to {ceiling} on the `{}` plan.",
                plan.name
            ),
        ));
    }
    Ok(value)
}

fn future(expires_at: Timestamp, now: i64) -> Result<i64, ApiError> {
    let ms = expires_at.as_millisecond();
    if ms <= now {
        return Err(ApiError::invalid(
            "expires_at",
            "`expires_at` must be in the future.",
        ));
    }
    Ok(ms)
}

/// Checks that `child` is no wider than the acting key in any dimension.
pub fn ensure_within(actor: &KeyRecord, child: &KeyRow, verb: &str) -> Result<(), ApiError> {
    let a = &actor.row;
    let extra = child.scopes.difference(a.scopes);
    if !extra.is_empty() {
        return Err(escalation(format!(
            "This key cannot {verb} a key with scopes it does not hold itself: {}.",
            extra.names().join(", ")
        )));
    }
    let (per_minute, per_day) = actor.limits();
    if child.per_minute > per_minute || child.per_day > per_day {
        return Err(escalation(format!(
            "This key cannot {verb} a key with higher rate limits than its own \
             ({per_minute}/min, {per_day}/day)."
        )));
    }
    if let Some(limit) = a.expires_at
        && child.expires_at.is_none_or(|t| t > limit)
    {
        return Err(escalation(format!(
            "This key cannot {verb} a key that outlives it (it expires at {}).",
            from_ms(limit)
        )));
    }
    let child_ips: Vec<IpNet> = child
        .allowed_ips
        .iter()
        .filter_map(|s| net::parse_ip_rule(s))
        .collect();
    if !net::ip_rules_within(&child_ips, &actor.ip_rules) {
        return Err(escalation(format!(
            "This key cannot {verb} a key usable from addresses it may not use itself."
        )));
    }
    let child_origins: Vec<OriginRule> = child
        .allowed_origins
        .iter()
        .filter_map(|s| OriginRule::parse(s))
        .collect();
    if !net::origin_rules_within(&child_origins, &actor.origin_rules) {
        return Err(escalation(format!(
            "This key cannot {verb} a key usable from origins it may not use itself."
        )));
    }
    if a.mode == KeyMode::Test && child.mode == KeyMode::Live {
        return Err(escalation(format!(
            "A test-mode key cannot {verb} a live-mode key."
        )));
    }
    Ok(())
}

/// Checks the brands and accounts `row` is limited to (`crier_app::reach::check_restriction`)
/// and stores them normalised in it. `changed`: which lists the request set (a create sets
/// both); a list kept as it was is not read again, so a key limited to a brand deleted since
/// can still be renamed. `was`: the key as stored before (an update), whose kept lists stand.
/// `actor`: the reach of the key that acts (`None`: the operator).
pub async fn check_reach(
    store: &crier_store::Store,
    row: &mut KeyRow,
    changed: &[&str],
    was: Option<&KeyRow>,
    actor: Option<&crier_app::Reach>,
) -> Result<(), ApiError> {
    let tenant = crier_core::Tenant {
        workspace: row.workspace_id.clone(),
        livemode: row.mode == KeyMode::Live,
    };
    let current = was
        .map(|k| crier_app::Restriction::from_stored(&k.allowed_brand_ids, &k.allowed_account_ids))
        .unwrap_or_default();
    let given = |name: &str, list: &[String]| {
        (was.is_none() || changed.contains(&name)).then(|| list.to_vec())
    };
    let brands = given("allowed_brand_ids", &row.allowed_brand_ids);
    let accounts = given("allowed_account_ids", &row.allowed_account_ids);
    let r = crier_app::reach::check_restriction(
        store,
        &tenant,
        brands.as_deref(),
        accounts.as_deref(),
        &current,
        actor,
    )
    .await?;
    row.allowed_brand_ids = r.brands.iter().map(ToString::to_string).collect();
    row.allowed_account_ids = r.accounts.iter().map(ToString::to_string).collect();
    Ok(())
}

/// Builds a new key from a create request. `creator` is the acting key (None for the
/// operator's CLI), whose restrictions are the defaults and the bounds.
pub fn new_key(
    ws: &WorkspaceId,
    req: CreateKey,
    plan: &Plan,
    creator: Option<&KeyRecord>,
    now: i64,
) -> Result<(KeyRow, SecretKey), ApiError> {
    let c = creator.map(|c| &c.row);
    let name = text(
        "name",
        req.name.as_deref().unwrap_or("API key"),
        MAX_NAME,
        true,
    )?;
    let description = text(
        "description",
        req.description.as_deref().unwrap_or(""),
        MAX_DESCRIPTION,
        false,
    )?;
    let scopes = scopes(&req.scopes)?;
    let mode = req.mode.or(c.map(|c| c.mode)).unwrap_or(KeyMode::Live);
    let rl = req.rate_limit.unwrap_or_default();
    let (cap_minute, cap_day) = creator
        .map(|c| c.limits())
        .unwrap_or((plan.per_minute, plan.per_day));
    let per_minute = limit(
        "rate_limit.per_minute",
        rl.per_minute
            .unwrap_or(DEFAULT_PER_MINUTE.min(cap_minute).min(plan.per_minute)),
        plan.per_minute,
        plan,
    )?;
    let per_day = limit(
        "rate_limit.per_day",
        rl.per_day
            .unwrap_or(DEFAULT_PER_DAY.min(cap_day).min(plan.per_day)),
        plan.per_day,
        plan,
    )?;
    let allowed_ips = match req.allowed_ips {
        Some(list) => ip_rules(&list)?.iter().map(ToString::to_string).collect(),
        None => c.map(|c| c.allowed_ips.clone()).unwrap_or_default(),
    };
    let allowed_origins = match req.allowed_origins {
        Some(list) => origin_rules(&list)?
            .iter()
            .map(ToString::to_string)
            .collect(),
        None => c.map(|c| c.allowed_origins.clone()).unwrap_or_default(),
    };
    // Checked against storage (and the creator's reach) by `check_reach`.
    let allowed_brand_ids = req
        .allowed_brand_ids
        .or_else(|| c.map(|c| c.allowed_brand_ids.clone()))
        .unwrap_or_default();
    let allowed_account_ids = req
        .allowed_account_ids
        .or_else(|| c.map(|c| c.allowed_account_ids.clone()))
        .unwrap_or_default();
    let expires_at = match req.expires_at {
        Some(Some(t)) => Some(future(t, now)?),
        Some(None) => None,
        None => c.and_then(|c| c.expires_at),
    };
    let secret = SecretKey::generate(mode);
    let row = KeyRow {
        id: KeyId::generate(),
        workspace_id: ws.clone(),
        name,
        description,
        prefix: secret.display_prefix().to_owned(),
        digest: secret.digest(),
        mode,
        scopes,
        per_minute,
        per_day,
        allowed_ips,
        allowed_origins,
        allowed_brand_ids,
        allowed_account_ids,
        expires_at,
        last_used_at: None,
        request_count: 0,
        created_at: now,
        updated_at: now,
        revoked_at: None,
        replaced_by: None,
        // A session's grant is no stored key: the audit entry names the user instead.
        created_by: creator
            .filter(|c| c.user.is_none())
            .map(|c| c.row.id.clone()),
        // What a member makes stays theirs: it sees and manages only their keys too.
        member_id: creator.and_then(|c| c.member().cloned()),
    };
    if let Some(creator) = creator {
        ensure_within(creator, &row, "create")?;
    }
    Ok((row, secret))
}

/// Applies an update to an existing key; returns the new row and the names of the fields
/// that changed. Reads only the request and `existing`'s fields, never its state (revoked,
/// replaced): a malformed request is `400` whatever the key's state, and the caller checks
/// the state after it.
pub fn updated_key(
    existing: &KeyRow,
    req: UpdateKey,
    plan: &Plan,
    actor: &KeyRecord,
    now: i64,
) -> Result<(KeyRow, Vec<&'static str>), ApiError> {
    let mut row = existing.clone();
    let mut changed = Vec::new();
    if let Some(name) = req.name {
        row.name = text("name", &name, MAX_NAME, true)?;
        changed.push("name");
    }
    if let Some(d) = req.description {
        row.description = text("description", &d, MAX_DESCRIPTION, false)?;
        changed.push("description");
    }
    if let Some(list) = req.scopes {
        row.scopes = scopes(&list)?;
        changed.push("scopes");
    }
    if let Some(rl) = req.rate_limit {
        if let Some(n) = rl.per_minute {
            row.per_minute = limit("rate_limit.per_minute", n, plan.per_minute, plan)?;
        }
        if let Some(n) = rl.per_day {
            row.per_day = limit("rate_limit.per_day", n, plan.per_day, plan)?;
        }
        changed.push("rate_limit");
    }
    if let Some(list) = req.allowed_ips {
        row.allowed_ips = ip_rules(&list)?.iter().map(ToString::to_string).collect();
        changed.push("allowed_ips");
    }
    if let Some(list) = req.allowed_origins {
        row.allowed_origins = origin_rules(&list)?
            .iter()
            .map(ToString::to_string)
            .collect();
        changed.push("allowed_origins");
    }
    // Their shape here; whether they name brands and accounts the key may have, in
    // `check_reach`.
    if let Some(list) = req.allowed_brand_ids {
        crier_app::reach::check_lists(Some(&list), None)?;
        row.allowed_brand_ids = list;
        changed.push("allowed_brand_ids");
    }
    if let Some(list) = req.allowed_account_ids {
        crier_app::reach::check_lists(None, Some(&list))?;
        row.allowed_account_ids = list;
        changed.push("allowed_account_ids");
    }
    if let Some(exp) = req.expires_at {
        row.expires_at = exp.map(|t| future(t, now)).transpose()?;
        changed.push("expires_at");
    }
    row.updated_at = now;
    ensure_within(actor, &row, "set up")?;
    Ok((row, changed))
}
