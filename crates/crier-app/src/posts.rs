//! The post rules, for every caller: what a post may contain, which accounts it may go to,
//! which change each status allows (the state machine in `crier_core::posts`), the networks'
//! text rules, approvals and the quota. Each operation reads the post, decides, and hands the
//! store one [`Transition`], which commits only if the post is still in the status the decision
//! was made on: a change that lost a race answers `409 conflict`, never half-applied.
//!
//! Texts are checked against every target network's rules when a post is scheduled or
//! published; `param` names the account and the field (`targets.acct_….body`).

use std::collections::{BTreeMap, BTreeSet};

use crier_core::Scope;
use crier_core::clock::from_ms;
use crier_core::ids::{AccountId, BrandId, PostId};
use crier_core::posts::{Action, ApprovedTo, PostStatus};
use crier_networks::Violation;
use crier_networks::sandbox::PLATFORM as SANDBOX;
use crier_store::{Account, Page, Post, PostFilter, PostOverride, Target, Transition};
use jiff::Timestamp;

use crate::quota::{self, Due};
use crate::reach::Reach;
use crate::{App, AppError, AppResult, Caller};

pub const MAX_TEXT: usize = 20_000;
pub const MAX_THREAD: usize = 25;
pub const MAX_ACCOUNTS: usize = 20;
pub const MAX_BATCH: usize = 100;
pub const MAX_REASON: usize = 1000;
pub const MAX_SPOILER: usize = 500;
/// Network options one account's override may set.
pub const MAX_OPTIONS: usize = 16;
/// The longest text an option value may be (each network's own limit is lower), and the most
/// items of a list value.
pub const MAX_OPTION_TEXT: usize = 5000;
pub const MAX_OPTION_ITEMS: usize = 100;
pub const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

/// One problem of a post for one target network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub account_id: String,
    pub platform: String,
    pub violation: Violation,
}

/// What preflight checks: a post as it would be created, or a stored one.
#[derive(Debug, Clone)]
pub enum Preflight {
    New(NewPost),
    Stored(String),
}

/// A new post's content. It goes to `account_ids`, or to the connected accounts of the brand
/// `brand_id` (exactly one of the two).
#[derive(Debug, Default, Clone)]
pub struct NewPost {
    pub body: String,
    pub thread: Vec<String>,
    pub account_ids: Vec<String>,
    pub brand_id: Option<String>,
    pub media_ids: Vec<String>,
    pub overrides: BTreeMap<String, PostOverride>,
}

/// What an edit changes; `None` keeps the field.
#[derive(Debug, Default, Clone)]
pub struct PostEdit {
    pub body: Option<String>,
    pub thread: Option<Vec<String>>,
    pub account_ids: Option<Vec<String>>,
    /// New accounts taken from a brand (not with `account_ids`).
    pub brand_id: Option<String>,
    pub media_ids: Option<Vec<String>>,
    pub overrides: Option<BTreeMap<String, PostOverride>>,
}

/// When a scheduled post goes out, as asked: exactly one of a time or a slot (`next`: the
/// next free slot of the workspace's queue).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct When {
    pub scheduled_at: Option<Timestamp>,
    pub slot: Option<String>,
}

/// One post of a batch: its content, and a time when it is to be scheduled at once.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub post: NewPost,
    pub scheduled_at: Option<Timestamp>,
}

/// A reviewer's decision on a post waiting for approval.
#[derive(Debug, Clone, Default)]
pub struct Review {
    pub reject: bool,
    pub reason: Option<String>,
}

/// The post rules over one [`App`].
pub struct Posts<'a> {
    pub(crate) app: &'a App,
}

impl Posts<'_> {
    fn now(&self) -> i64 {
        self.app.clock().now_ms()
    }

    /// The post `id` of the caller's workspace and mode, within its reach (every target an
    /// account it reaches); `404` otherwise.
    pub async fn get(&self, c: &Caller, id: &str) -> AppResult<Post> {
        let not_found = || AppError::not_found("post", id);
        let id = PostId::parse(id).ok_or_else(not_found)?;
        let post = self
            .app
            .store()
            .get_post_in(&c.tenant, &id)
            .await?
            .ok_or_else(not_found)?;
        if c.is_limited() && !self.app.reach(c).await?.post(&post) {
            return Err(not_found());
        }
        Ok(post)
    }

    /// A page of the caller's posts (of its mode, within its reach), newest first.
    pub async fn list(
        &self,
        c: &Caller,
        filter: PostFilter,
        limit: u32,
        offset: u32,
    ) -> AppResult<Page<Post>> {
        let filter = PostFilter {
            livemode: Some(c.livemode()),
            within: self.app.reach(c).await?.account_list(),
            ..filter
        };
        Ok(self
            .app
            .store()
            .list_posts(c.workspace(), &filter, limit, offset)
            .await?)
    }

    /// What is scheduled (and waiting for approval) in the caller's mode and reach, in the
    /// order it goes out.
    pub async fn queue(&self, c: &Caller, limit: u32, offset: u32) -> AppResult<Page<Post>> {
        let within = self.app.reach(c).await?.account_list();
        Ok(self
            .app
            .store()
            .list_queue(&c.tenant, within.as_deref(), limit, offset)
            .await?)
    }

    /// Checks and resolves the accounts a post goes to: well-formed, in this workspace, of
    /// the caller's mode and within its reach, connected, each once; test mode publishes only
    /// to sandbox accounts. An account beyond a limited key's reach is refused as an unknown
    /// one is.
    pub async fn resolve_accounts(
        &self,
        c: &Caller,
        param: &str,
        ids: &[String],
    ) -> AppResult<Vec<Account>> {
        let reach = self.app.reach(c).await?;
        self.resolve_accounts_in(c, &reach, param, ids).await
    }

    /// The accounts a new post or an edit names (`account_ids`), or those of the brand it
    /// names (`brand_id`): exactly one of the two. Returns the brand too, when it named one.
    async fn targets(
        &self,
        c: &Caller,
        reach: &Reach,
        account_ids: Option<&[String]>,
        brand_id: Option<&str>,
    ) -> AppResult<(Option<BrandId>, Vec<Account>)> {
        let brand = match (account_ids, brand_id) {
            (Some(_), Some(_)) => return Err(both_targets()),
            (ids, None) => {
                let ids = ids.unwrap_or_default();
                let accounts = self
                    .resolve_accounts_in(c, reach, "account_ids", ids)
                    .await?;
                return Ok((None, accounts));
            }
            (None, Some(brand)) => brand,
        };
        let (brand, ids) = self
            .app
            .brands()
            .accounts_for_post(c, "brand_id", brand)
            .await?;
        let accounts = self.resolve_accounts_in(c, reach, "brand_id", &ids).await?;
        Ok((Some(brand), accounts))
    }

    async fn resolve_accounts_in(
        &self,
        c: &Caller,
        reach: &Reach,
        param: &str,
        ids: &[String],
    ) -> AppResult<Vec<Account>> {
        let parsed = account_list(param, ids)?;
        let mut accounts = Vec::with_capacity(ids.len());
        for (id, acct) in ids.iter().zip(parsed) {
            if !reach.account(&acct) {
                return Err(unknown_account(param, id));
            }
            let account = self
                .app
                .store()
                .get_account_in(&c.tenant, &acct)
                .await?
                .ok_or_else(|| unknown_account(param, id))?;
            if account.status != crier_core::accounts::AccountStatus::Connected {
                return Err(AppError::invalid(
                    param,
                    format!("Account '{id}' is disconnected."),
                ));
            }
            if !c.livemode() && account.platform != SANDBOX {
                return Err(AppError::invalid(
                    param,
                    "Test-mode keys publish only to sandbox accounts.",
                ));
            }
            accounts.push(account);
        }
        Ok(accounts)
    }

    /// A draft built from `req` (checked, not stored).
    async fn build(&self, c: &Caller, reach: &Reach, req: NewPost) -> AppResult<Post> {
        text("body", &req.body)?;
        thread("thread", &req.thread)?;
        // An empty `account_ids` beside a brand is no list at all (a client's default).
        let ids = (!req.account_ids.is_empty() || req.brand_id.is_none())
            .then_some(req.account_ids.as_slice());
        let (brand_id, accounts) = self.targets(c, reach, ids, req.brand_id.as_deref()).await?;
        let names: Vec<String> = accounts.iter().map(|a| a.id.to_string()).collect();
        check_overrides(&req.overrides, &names)?;
        self.app
            .media()
            .ready_meta(&c.tenant, &req.media_ids)
            .await?;
        Ok(Post {
            thread: req.thread,
            media_ids: req.media_ids,
            overrides: req.overrides,
            brand_id,
            ..Post::draft(c.workspace(), c.livemode(), &accounts, req.body, self.now())
        })
    }

    /// Creates a draft.
    pub async fn create(&self, c: &Caller, req: NewPost) -> AppResult<Post> {
        let reach = self.app.reach(c).await?;
        let post = self.build(c, &reach, req).await?;
        self.app.store().insert_post(&post).await?;
        Ok(post)
    }

    /// Creates up to [`MAX_BATCH`] drafts, or scheduled posts where a time is given, all or
    /// nothing. Errors name the item (`posts[3].account_ids`).
    pub async fn create_batch(&self, c: &Caller, items: Vec<BatchItem>) -> AppResult<Vec<Post>> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(AppError::invalid(
                "posts",
                format!("`posts` must hold 1 to {MAX_BATCH} posts."),
            ));
        }
        let approval = self.require_approval(c).await?;
        let reach = self.app.reach(c).await?;
        let now = self.app.clock().now();
        let mut posts = Vec::with_capacity(items.len());
        let mut scheduled = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let prefix = format!("posts[{i}].");
            let mut post = self
                .build(c, &reach, item.post)
                .await
                .map_err(|e| e.within(&prefix))?;
            if let Some(at) = item.scheduled_at {
                if at <= now {
                    return Err(AppError::invalid(
                        format!("{prefix}scheduled_at"),
                        "`scheduled_at` must be in the future.",
                    ));
                }
                self.check_rules(c, &post)
                    .await
                    .map_err(|e| e.within(&prefix))?;
                // As stored before this batch: a draft, holding no place in the quota yet.
                scheduled.push((post.clone(), at.as_millisecond()));
                post.scheduled_at = Some(at.as_millisecond());
                post.status = if approval {
                    PostStatus::PendingApproval
                } else {
                    PostStatus::Scheduled
                };
            }
            posts.push(post);
        }
        let due: Vec<Due> = scheduled
            .iter()
            .map(|(post, at)| Due {
                stored: None,
                post,
                at: *at,
            })
            .collect();
        quota::check(self.app.store(), c, &due, now.as_millisecond()).await?;
        self.app.store().insert_posts(&posts).await?;
        Ok(posts)
    }

    /// Edits a draft, a scheduled post or one waiting for approval (not once publishing).
    /// When the workspace requires approval, an edit of a scheduled post sends it back to
    /// `pending_approval`: what was approved is not what would go out. Otherwise an edit of
    /// a scheduled post changes what will be published, so it needs `posts:publish` too.
    pub async fn edit(&self, c: &Caller, id: &str, req: PostEdit) -> AppResult<Post> {
        let stored = self.get(c, id).await?;
        // The edit first: a malformed one is `400` whatever the post's status.
        check_edit(&req)?;
        let mut post = stored.clone();
        allowed(&post, Action::Edit, false, ApprovedTo::Scheduled, "edited")?;
        let back_to_review =
            post.status == PostStatus::Scheduled && self.require_approval(c).await?;
        if post.status == PostStatus::Scheduled && !back_to_review {
            c.require(Scope::PostsPublish)?;
        }
        if let Some(body) = req.body {
            post.body = body;
        }
        if let Some(t) = req.thread {
            post.thread = t;
        }
        if req.account_ids.is_some() || req.brand_id.is_some() {
            let reach = self.app.reach(c).await?;
            let (brand_id, accounts) = self
                .targets(
                    c,
                    &reach,
                    req.account_ids.as_deref(),
                    req.brand_id.as_deref(),
                )
                .await?;
            post.account_ids = accounts.iter().map(|a| a.id.clone()).collect();
            post.targets = Target::pending_for(&post.id, &accounts);
            post.brand_id = brand_id;
        }
        if let Some(m) = req.media_ids {
            self.app.media().ready_meta(&c.tenant, &m).await?;
            post.media_ids = m;
        }
        if let Some(o) = req.overrides {
            post.overrides = o;
        }
        let account_names: Vec<String> = post.account_ids.iter().map(ToString::to_string).collect();
        check_overrides(&post.overrides, &account_names)?;
        let now = self.now();
        if post.status != PostStatus::Draft {
            self.check_rules(c, &post).await?;
            // Other accounts take other places in the quota.
            let due = Due {
                stored: Some(&stored),
                post: &post,
                at: post.scheduled_at.unwrap_or(now).max(now),
            };
            quota::check(self.app.store(), c, &[due], now).await?;
        }
        let t = if back_to_review {
            Transition {
                content: Some(post),
                // The approval was of other content: it no longer holds.
                review: Some(None),
                ..Transition::new(stored.status, PostStatus::PendingApproval, now)
            }
        } else {
            Transition {
                enqueue_at: (stored.status == PostStatus::Scheduled)
                    .then_some(stored.scheduled_at)
                    .flatten(),
                content: Some(post),
                ..Transition::new(stored.status, stored.status, now)
            }
        };
        self.commit(c, &stored, t, "edited").await
    }

    /// Deletes a post (a scheduled one is unscheduled with it). Not while it is publishing.
    pub async fn delete(&self, c: &Caller, id: &str) -> AppResult<PostId> {
        let post = self.get(c, id).await?;
        allowed(
            &post,
            Action::Delete,
            false,
            ApprovedTo::Scheduled,
            "deleted",
        )?;
        if !self
            .app
            .store()
            .delete_post(c.workspace(), &post.id, post.status)
            .await?
        {
            return Err(moved(self.get(c, id).await.ok().as_ref(), "deleted"));
        }
        Ok(post.id)
    }

    /// Schedules a draft (or reschedules a scheduled post) at a time or the next queue slot;
    /// when the workspace requires approval it waits for one.
    pub async fn schedule(&self, c: &Caller, id: &str, when: When) -> AppResult<Post> {
        let post = self.get(c, id).await?;
        // What was asked first: a malformed request is `400` whatever the post's status.
        let asked = self.asked_time(&when)?;
        let approval = self.require_approval(c).await?;
        let to = allowed(
            &post,
            Action::Schedule,
            approval,
            ApprovedTo::Scheduled,
            "scheduled",
        )?;
        let at = match asked {
            Some(at) => at,
            None => self.next_slot(c).await?,
        };
        self.check_rules(c, &post).await?;
        let now = self.now();
        quota::check(self.app.store(), c, &[Due::stored(&post, at)], now).await?;
        let t = Transition {
            scheduled_at: Some(Some(at)),
            enqueue_at: (to == PostStatus::Scheduled).then_some(at),
            ..Transition::new(post.status, to, now)
        };
        self.commit(c, &post, t, "scheduled").await
    }

    /// Publishes now (or asks for approval first).
    pub async fn publish_now(&self, c: &Caller, id: &str) -> AppResult<Post> {
        let post = self.get(c, id).await?;
        let approval = self.require_approval(c).await?;
        let to = allowed(
            &post,
            Action::PublishNow,
            approval,
            ApprovedTo::Publishing,
            "published now",
        )?;
        self.check_rules(c, &post).await?;
        let now = self.now();
        quota::check(self.app.store(), c, &[Due::stored(&post, now)], now).await?;
        let t = Transition {
            scheduled_at: Some(None),
            enqueue_at: (to == PostStatus::Publishing).then_some(now),
            ..Transition::new(post.status, to, now)
        };
        self.commit(c, &post, t, "published now").await
    }

    /// Publishes again to the accounts that failed.
    pub async fn retry(&self, c: &Caller, id: &str) -> AppResult<Post> {
        let post = self.get(c, id).await?;
        let to = allowed(
            &post,
            Action::Retry,
            false,
            ApprovedTo::Publishing,
            "retried",
        )?;
        let now = self.now();
        quota::check(self.app.store(), c, &[Due::stored(&post, now)], now).await?;
        let t = Transition {
            reset_failed_targets: true,
            enqueue_at: Some(now),
            ..Transition::new(post.status, to, now)
        };
        self.commit(c, &post, t, "retried").await
    }

    /// Back to draft from scheduled or from waiting for approval.
    pub async fn cancel(&self, c: &Caller, id: &str) -> AppResult<Post> {
        let post = self.get(c, id).await?;
        let to = allowed(
            &post,
            Action::Cancel,
            false,
            ApprovedTo::Scheduled,
            "cancelled",
        )?;
        let t = Transition {
            scheduled_at: Some(None),
            ..Transition::new(post.status, to, self.now())
        };
        self.commit(c, &post, t, "cancelled").await
    }

    /// Approves a post waiting for approval (it goes to its scheduled time, or out now), or
    /// rejects it (back to draft).
    pub async fn review(&self, c: &Caller, id: &str, review: Review) -> AppResult<Post> {
        if let Some(reason) = &review.reason
            && reason.chars().count() > MAX_REASON
        {
            return Err(AppError::invalid(
                "reason",
                format!("`reason` must be at most {MAX_REASON} characters."),
            ));
        }
        let post = self.get(c, id).await?;
        let now = self.now();
        let approved_to = match post.scheduled_at {
            Some(at) if at > now => ApprovedTo::Scheduled,
            _ => ApprovedTo::Publishing,
        };
        let (action, verb) = if review.reject {
            (Action::Reject, "rejected")
        } else {
            (Action::Approve, "approved")
        };
        let to = allowed(&post, action, false, approved_to, verb)?;
        if !review.reject {
            self.check_rules(c, &post).await?;
            let due = post.scheduled_at.unwrap_or(now).max(now);
            quota::check(self.app.store(), c, &[Due::stored(&post, due)], now).await?;
        }
        let record = serde_json::json!({
            "decision": verb,
            "reason": review.reason,
            "by": c.actor,
            "at": from_ms(now),
        });
        let t = Transition {
            // Publishing now, or back to draft: the post no longer waits for a time.
            scheduled_at: matches!(to, PostStatus::Publishing | PostStatus::Draft).then_some(None),
            review: Some(Some(record)),
            enqueue_at: match to {
                PostStatus::Scheduled => post.scheduled_at,
                PostStatus::Publishing => Some(now),
                _ => None,
            },
            ..Transition::new(post.status, to, now)
        };
        self.commit(c, &post, t, verb).await
    }

    /// Every problem of `post` for every target network at once (nothing is saved): each
    /// names the account, the rule, the field and why. What preflight answers, and what
    /// [`Posts::check_rules`] refuses on.
    pub async fn problems(&self, c: &Caller, post: &Post) -> AppResult<Vec<Problem>> {
        let media = self
            .app
            .media()
            .ready_meta(&c.tenant, &post.media_ids)
            .await?;
        // Each target's rules, read at once: networks of many servers may ask theirs (each
        // bounded by its connector), and a post to 20 instances must not wait for them in turn.
        let rules = futures::future::join_all(post.targets.iter().map(|t| async move {
            let network = self.app.networks().get(&t.platform)?;
            let account = self
                .app
                .store()
                .get_account_in(&c.tenant, &t.account_id)
                .await;
            Some(match account {
                Ok(Some(a)) => Ok(network.rules_for(&a).await),
                Ok(None) => Ok(network.rules().clone()),
                Err(e) => Err(e),
            })
        }))
        .await;
        let mut out = Vec::new();
        for (t, rules) in post.targets.iter().zip(rules) {
            let Some(rules) = rules else {
                out.push(Problem {
                    account_id: t.account_id.to_string(),
                    platform: t.platform.clone(),
                    violation: Violation {
                        rule: format!("{}.unsupported", t.platform),
                        field: "account_ids".into(),
                        message: format!("no connector for {}", t.platform),
                    },
                });
                continue;
            };
            let parts = post.parts_for(&t.account_id);
            let rules = rules?;
            let options = post
                .overrides
                .get(t.account_id.as_str())
                .map(|o| rules.check_options(&o.options))
                .unwrap_or_default();
            for violation in rules.check(&parts, &media).into_iter().chain(options) {
                out.push(Problem {
                    account_id: t.account_id.to_string(),
                    platform: t.platform.clone(),
                    violation,
                });
            }
        }
        Ok(out)
    }

    /// `400 invalid_request` on the first problem of any target (`param`
    /// `targets.{account}.{field}`).
    pub async fn check_rules(&self, c: &Caller, post: &Post) -> AppResult<()> {
        if let Some(p) = self.problems(c, post).await?.into_iter().next() {
            let v = p.violation;
            return Err(AppError::invalid(
                format!("targets.{}.{}", p.account_id, v.field),
                format!(
                    "For account {} ({}): {} {} ({}).",
                    p.account_id, p.platform, v.field, v.message, v.rule
                ),
            ));
        }
        Ok(())
    }

    /// Preflight: the problems of a post as `req` describes it (or of the stored post `id`),
    /// for every target, without saving anything.
    pub async fn validate(&self, c: &Caller, req: Preflight) -> AppResult<(Post, Vec<Problem>)> {
        let post = match req {
            Preflight::Stored(id) => self.get(c, &id).await?,
            Preflight::New(new) => {
                let reach = self.app.reach(c).await?;
                self.build(c, &reach, new).await?
            }
        };
        let problems = self.problems(c, &post).await?;
        Ok((post, problems))
    }

    async fn require_approval(&self, c: &Caller) -> AppResult<bool> {
        Ok(self
            .app
            .store()
            .get_workspace(c.workspace())
            .await?
            .is_some_and(|w| w.require_approval))
    }

    /// The instant `when` names, or `None` for the next free queue slot ([`Self::next_slot`]):
    /// exactly one of a time in the future or `slot: next`. Reads nothing stored.
    fn asked_time(&self, when: &When) -> AppResult<Option<i64>> {
        let now = self.app.clock().now();
        match (when.scheduled_at, when.slot.as_deref()) {
            (Some(_), Some(_)) | (None, None) => Err(AppError::invalid(
                "scheduled_at",
                "Give either `scheduled_at` or `slot`.",
            )),
            (None, Some(other)) if other != "next" => Err(AppError::invalid(
                "slot",
                format!("`slot` must be `next`, not `{other}`."),
            )),
            (Some(at), None) => {
                if at <= now {
                    return Err(AppError::invalid(
                        "scheduled_at",
                        "`scheduled_at` must be in the future.",
                    ));
                }
                Ok(Some(at.as_millisecond()))
            }
            (None, Some(_)) => Ok(None),
        }
    }

    /// The next free slot of the workspace's queue.
    async fn next_slot(&self, c: &Caller) -> AppResult<i64> {
        let now = self.app.clock().now();
        let ws = self
            .app
            .store()
            .get_workspace(c.workspace())
            .await?
            .ok_or_else(|| AppError::internal("workspace missing"))?;
        self.app
            .store()
            .queue_plan(&ws, c.livemode(), now.as_millisecond())
            .await?
            .next_free(now)
            .map(|t| t.as_millisecond())
            .ok_or_else(|| {
                AppError::invalid(
                    "slot",
                    "No free queue slot in the next 8 weeks; set slots with PUT /v1/queue/slots.",
                )
            })
    }

    /// Applies `t` to `post` and returns the post as it is now; `409` when it lost a race.
    async fn commit(&self, c: &Caller, post: &Post, t: Transition, verb: &str) -> AppResult<Post> {
        // Decided on this read of the post: only if it is still this version.
        let t = Transition {
            version: Some(post.version),
            ..t
        };
        let due_now = t.enqueue_at.is_some_and(|at| at <= t.now);
        if !self
            .app
            .store()
            .transition(c.workspace(), &post.id, &t)
            .await?
        {
            let now = self.get(c, post.id.as_str()).await.ok();
            return Err(moved(now.as_ref(), verb));
        }
        if due_now {
            self.app.publish_wake().notify_waiters();
        }
        self.get(c, post.id.as_str()).await
    }
}

/// Where `action` takes `post` (see [`PostStatus::after`]), or `409 conflict` naming what it
/// cannot be (`verb`: "scheduled", "retried", …).
fn allowed(
    post: &Post,
    action: Action,
    require_approval: bool,
    approved_to: ApprovedTo,
    verb: &str,
) -> AppResult<PostStatus> {
    post.status
        .after(action, require_approval, approved_to)
        .ok_or_else(|| illegal(post.status, verb))
}

fn illegal(status: PostStatus, what: &str) -> AppError {
    let status_text = status.as_str().replace('_', " ");
    let why = if status == PostStatus::Publishing {
        " Its call to the network may be in flight; wait until it is published or failed."
    } else {
        ""
    };
    AppError::conflict(format!(
        "A post that is {status_text} cannot be {what}.{why}"
    ))
}

/// The post changed between the read and the conditional write: `409`, saying what it is now
/// when that explains it (the publisher took it).
fn moved(now: Option<&Post>, what: &str) -> AppError {
    match now {
        Some(post) if post.status == PostStatus::Publishing => illegal(post.status, what),
        _ => AppError::conflict("The post changed while this request ran; read it and try again."),
    }
}

fn text(param: &str, s: &str) -> AppResult<()> {
    if s.trim().is_empty() {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must not be empty."),
        ));
    }
    if s.chars().count() > MAX_TEXT {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must be at most {MAX_TEXT} characters."),
        ));
    }
    Ok(())
}

fn thread(param: &str, parts: &[String]) -> AppResult<()> {
    if parts.len() > MAX_THREAD {
        return Err(AppError::invalid(
            param,
            format!("`{param}` may have at most {MAX_THREAD} parts."),
        ));
    }
    for (i, part) in parts.iter().enumerate() {
        text(&format!("{param}[{i}]"), part)?;
    }
    Ok(())
}

/// What an edit may hold, checked before the post's status: what needs no storage (the shapes
/// the OpenAPI description states). Whether the accounts, the brand and the media exist, and
/// whether the overrides name the post's accounts, is checked after.
fn check_edit(req: &PostEdit) -> AppResult<()> {
    if let Some(body) = &req.body {
        text("body", body)?;
    }
    if let Some(t) = &req.thread {
        thread("thread", t)?;
    }
    if req.account_ids.is_some() && req.brand_id.is_some() {
        return Err(both_targets());
    }
    if let Some(ids) = &req.account_ids {
        account_list("account_ids", ids)?;
    }
    if let Some(b) = &req.brand_id
        && BrandId::parse(b).is_none()
    {
        return Err(crate::brands::unknown_brand("brand_id", b));
    }
    if let Some(ids) = &req.media_ids {
        crate::media::check_post_media(ids)?;
    }
    if let Some(o) = &req.overrides {
        override_shapes(o)?;
    }
    Ok(())
}

fn both_targets() -> AppError {
    AppError::invalid(
        "brand_id",
        "Give either `account_ids` or `brand_id`, not both.",
    )
}

fn unknown_account(param: &str, id: &str) -> AppError {
    AppError::invalid(param, format!("No such account: '{id}'."))
}

/// The shape of a list of accounts to post to: 1 to [`MAX_ACCOUNTS`] well-formed ids, each
/// once. Whether they exist, are connected and are within reach needs storage.
fn account_list(param: &str, ids: &[String]) -> AppResult<Vec<AccountId>> {
    if ids.is_empty() || ids.len() > MAX_ACCOUNTS {
        return Err(AppError::invalid(
            param,
            format!("`{param}` must list 1 to {MAX_ACCOUNTS} accounts."),
        ));
    }
    let mut seen = BTreeSet::new();
    ids.iter()
        .map(|id| {
            if !seen.insert(id) {
                return Err(AppError::invalid(param, format!("`{id}` is listed twice.")));
            }
            AccountId::parse(id).ok_or_else(|| unknown_account(param, id))
        })
        .collect()
}

/// Overrides as they must be for `accounts`: each names one of them, and has a valid shape.
fn check_overrides(
    overrides: &BTreeMap<String, PostOverride>,
    accounts: &[String],
) -> AppResult<()> {
    override_shapes(overrides)?;
    match overrides.keys().find(|acct| !accounts.contains(acct)) {
        Some(acct) => Err(not_a_target(acct)),
        None => Ok(()),
    }
}

fn not_a_target(acct: &str) -> AppError {
    AppError::invalid(
        format!("overrides.{acct}"),
        "Overrides may only name accounts in `account_ids`.",
    )
}

/// The shape of overrides, whatever accounts the post goes to: at most [`MAX_ACCOUNTS`], each
/// named by a well-formed account id, with valid texts and options.
fn override_shapes(overrides: &BTreeMap<String, PostOverride>) -> AppResult<()> {
    if overrides.len() > MAX_ACCOUNTS {
        return Err(AppError::invalid(
            "overrides",
            format!("`overrides` may name at most {MAX_ACCOUNTS} accounts."),
        ));
    }
    for (acct, o) in overrides {
        let param = format!("overrides.{acct}");
        if AccountId::parse(acct).is_none() {
            return Err(not_a_target(acct));
        }
        if let Some(body) = &o.body {
            text(&format!("{param}.body"), body)?;
        }
        if let Some(t) = &o.thread {
            thread(&format!("{param}.thread"), t)?;
        }
        if let Some(v) = &o.visibility
            && !VISIBILITIES.contains(&v.as_str())
        {
            return Err(AppError::invalid(
                format!("{param}.visibility"),
                "`visibility` must be `public`, `unlisted`, `private` or `direct`.",
            ));
        }
        if let Some(w) = &o.spoiler_text
            && w.chars().count() > MAX_SPOILER
        {
            return Err(AppError::invalid(
                format!("{param}.spoiler_text"),
                format!("`spoiler_text` must be at most {MAX_SPOILER} characters."),
            ));
        }
        if o.options.len() > MAX_OPTIONS {
            return Err(AppError::invalid(
                format!("{param}.options"),
                format!("`options` may have at most {MAX_OPTIONS} entries."),
            ));
        }
        let fits = |v: &serde_json::Value| match v {
            serde_json::Value::String(t) => t.chars().count() <= MAX_OPTION_TEXT,
            serde_json::Value::Bool(_) => true,
            serde_json::Value::Array(items) => {
                items.len() <= MAX_OPTION_ITEMS
                    && items.iter().all(|i| {
                        i.as_str()
                            .is_some_and(|t| t.chars().count() <= MAX_OPTION_TEXT)
                    })
            }
            _ => false,
        };
        if let Some(name) = o.options.iter().find(|(_, v)| !fits(v)).map(|(k, _)| k) {
            return Err(AppError::invalid(
                format!("{param}.options"),
                format!(
                    "Option values are text (at most {MAX_OPTION_TEXT} characters), true or \
                     false, or a list of at most {MAX_OPTION_ITEMS} texts; `{}` is not.",
                    name.chars()
                        .filter(|c| !c.is_control())
                        .take(64)
                        .collect::<String>()
                ),
            ));
        }
        if o.options.keys().any(|k| k.is_empty() || k.len() > 64) {
            return Err(AppError::invalid(
                format!("{param}.options"),
                "`options` names are 1 to 64 bytes.",
            ));
        }
        if let Some(l) = &o.language
            && (!(2..=3).contains(&l.len()) || !l.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return Err(AppError::invalid(
                format!("{param}.language"),
                "`language` must be an ISO 639 code of 2 or 3 lowercase letters (`en`, `de`).",
            ));
        }
    }
    Ok(())
}
