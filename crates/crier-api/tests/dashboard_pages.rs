//! The Feeds, Queue and Analytics pages over HTTP, on both backends: each page shows what was
//! made through the API; the forms create, change and delete through the API's own handlers
//! (and without the session's CSRF token change nothing); the API's errors show next to their
//! field with nothing changed; another workspace's feed is a 404 page; a member sees what the
//! role may read and cannot change it; the analytics charts draw the posts published.

mod common;

use common::posts::{act_ok, draft, drain, patch_workspace};
use common::users::{Browser, count, sign_in, submit, user};
use common::{KeySpec, Response, TestApp, both};
use crier_core::Role;
use serde_json::{Value, json};

const URL: &str = "https://blog.example.com/feed.xml";

/// An app with an owner signed in, a key with every scope and one sandbox account.
async fn world(role: Role) -> (TestApp, Browser, String, String) {
    let app = TestApp::new().await;
    let ada = user(&app, "ada@example.com", role).await;
    let b = sign_in(&app, &ada.email).await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    (app, b, key, acct)
}

async fn page(app: &TestApp, b: &Browser, path: &str) -> Response {
    app.get(path).header("cookie", &b.cookie).send().await
}

async fn feeds(app: &TestApp) -> usize {
    count(app, "SELECT id FROM feeds").await
}

async fn api_feed(app: &TestApp, key: &str, body: Value) -> String {
    let r = app.post("/v1/feeds").key(key).json(body).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn get_json(app: &TestApp, key: &str, path: &str) -> Value {
    let r = app.get(path).key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[track_caller]
fn assert_field_error(r: &Response, param: &str, message: &str) {
    assert_eq!(r.status, 400, "{}", r.text);
    let at = "class=\"field-error\" id=";
    let shown = r
        .text
        .split(at)
        .skip(1)
        .find(|s| s.contains(&format!("data-param=\"{param}\"")))
        .unwrap_or_else(|| panic!("no error next to {param}: {}", r.text));
    assert!(shown.contains(message), "{param}: {shown}");
}

async fn the_feeds_page_lists_creates_changes_and_deletes() {
    let (app, b, key, acct) = world(Role::Owner).await;
    let r = page(&app, &b, "/app/feeds").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("No feeds yet."));
    assert!(r.text.contains("brand (sandbox)"), "the accounts to tick");

    // Made through the API: listed with its accounts, mode and state.
    let id = api_feed(&app, &key, json!({"url": URL, "account_ids": [acct]})).await;
    let r = page(&app, &b, "/app/feeds").await;
    assert_eq!(r.status, 200);
    let row = r
        .text
        .split(&format!("data-feed-id=\"{id}\""))
        .nth(1)
        .expect("the feed's row")
        .split("</tr>")
        .next()
        .unwrap();
    for shown in [URL, "brand (sandbox)", "draft", "state-enabled", "never"] {
        assert!(row.contains(shown), "{shown}: {row}");
    }

    // A new one through the form: without the session's token, nothing.
    let fields = [
        ("url", "https://news.example.org/atom"),
        ("account_id", acct.as_str()),
        ("template", "New: {title} {link}"),
        ("mode", "draft"),
        ("poll_interval_seconds", "3600"),
        ("backfill", "2"),
    ];
    let r = submit(&app, &b, "/app/feeds", &fields).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(feeds(&app).await, 1);
    let mut with_token = fields.to_vec();
    with_token.push(("_csrf", &b.csrf));
    let r = submit(&app, &b, "/app/feeds", &with_token).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/app/feeds?done=created"));
    let list = get_json(&app, &key, "/v1/feeds").await;
    let made = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["url"] == "https://news.example.org/atom")
        .expect("the feed made through the form")
        .clone();
    assert_eq!(made["template"], "New: {title} {link}");
    assert_eq!(made["poll_interval_seconds"], 3600);
    assert_eq!(made["backfill"], 2);
    assert_eq!(made["account_ids"], json!([acct]));
    let made = made["id"].as_str().unwrap().to_owned();

    // Its page; disabled, then a new template, through the forms.
    let r = page(&app, &b, &format!("/app/feeds/{made}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("https://news.example.org/atom"));
    let path = format!("/app/feeds/{made}/disable");
    let r = submit(&app, &b, &path, &[("_csrf", &b.csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let f = get_json(&app, &key, &format!("/v1/feeds/{made}")).await;
    assert_eq!(f["enabled"], false);
    let path = format!("/app/feeds/{made}/update");
    let mut edit = with_token.clone();
    edit[2] = ("template", "{title}");
    let r = submit(&app, &b, &path, &edit).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let f = get_json(&app, &key, &format!("/v1/feeds/{made}")).await;
    assert_eq!(f["template"], "{title}");
    assert_eq!(f["url"], "https://news.example.org/atom");
    let r = page(&app, &b, &format!("/app/feeds/{made}?done=saved")).await;
    assert!(r.text.contains("state-disabled"), "{}", r.text);

    // Deleting: not without the token; then gone.
    let path = format!("/app/feeds/{made}/delete");
    let r = submit(&app, &b, &path, &[]).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(feeds(&app).await, 2);
    let r = submit(&app, &b, &path, &[("_csrf", &b.csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/app/feeds?done=deleted"));
    assert_eq!(feeds(&app).await, 1);
    let r = app.get(&format!("/v1/feeds/{made}")).key(&key).send().await;
    assert_eq!(r.status, 404);
}

async fn a_refused_feed_form_shows_the_apis_error_by_its_field() {
    let (app, b, key, acct) = world(Role::Owner).await;
    let bad = [
        (
            "url",
            "ftp://blog.example.com/feed",
            "`url` must be an http or https URL.",
        ),
        ("template", "no placeholders", "at least one of {title}"),
        ("backfill", "51", "`backfill` must be from 0 to 50."),
    ];
    for (field, value, message) in bad {
        let mut pairs = vec![
            ("_csrf", b.csrf.as_str()),
            ("url", URL),
            ("account_id", acct.as_str()),
            ("template", "{title}"),
            ("backfill", "0"),
        ];
        pairs.retain(|(k, _)| *k != field);
        pairs.push((field, value));
        let r = submit(&app, &b, "/app/feeds", &pairs).await;
        assert_field_error(&r, field, message);
        assert!(r.text.contains(value), "what was typed stays: {value}");
        assert_eq!(feeds(&app).await, 0, "{field}");
    }
    // No account ticked: the API's error about `account_ids`, by the accounts.
    let r = submit(&app, &b, "/app/feeds", &[("_csrf", &b.csrf), ("url", URL)]).await;
    assert_field_error(&r, "account_ids", "account_ids");
    assert_eq!(feeds(&app).await, 0);

    // An edit refused: the feed as it was.
    let id = api_feed(&app, &key, json!({"url": URL, "account_ids": [acct]})).await;
    let before = get_json(&app, &key, &format!("/v1/feeds/{id}")).await;
    let r = submit(
        &app,
        &b,
        &format!("/app/feeds/{id}/update"),
        &[
            ("_csrf", &b.csrf),
            ("url", "not a url"),
            ("account_id", &acct),
            ("template", "{summary}"),
        ],
    )
    .await;
    assert_field_error(&r, "url", "not a valid URL");
    assert_eq!(
        get_json(&app, &key, &format!("/v1/feeds/{id}")).await,
        before
    );
}

async fn another_workspaces_feed_is_a_404_page() {
    let (app, b, _, _) = world(Role::Owner).await;
    let other = app.other_workspace("rivals").await;
    let (theirs, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: crier_core::Scope::ALL.to_vec(),
                ..KeySpec::default()
            },
        )
        .await;
    let acct = app.sandbox_account(&theirs, "rival").await;
    let id = api_feed(&app, &theirs, json!({"url": URL, "account_ids": [acct]})).await;
    let r = page(&app, &b, &format!("/app/feeds/{id}")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(!r.text.contains(URL));
    for action in ["delete", "disable", "update"] {
        let path = format!("/app/feeds/{id}/{action}");
        let r = submit(&app, &b, &path, &[("_csrf", &b.csrf), ("url", URL)]).await;
        assert_eq!(r.status, 404, "{action}: {}", r.text);
    }
    let f = get_json(&app, &theirs, &format!("/v1/feeds/{id}")).await;
    assert_eq!(f["enabled"], true);
    assert_eq!(feeds(&app).await, 1);
    let r = page(&app, &b, "/app/feeds").await;
    assert!(!r.text.contains(&id), "not listed either");
}

async fn queue_slots_are_saved_through_the_form_in_the_workspaces_zone() {
    let (app, b, key, acct) = world(Role::Owner).await;
    patch_workspace(&app, &key, json!({"timezone": "Europe/Berlin"})).await;
    let r = page(&app, &b, "/app/queue").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Europe/Berlin"), "the zone is named");
    assert!(r.text.contains("Nothing is scheduled."));

    // Two slots, one form: the rows, then the "add" row.
    let slots_form = |rows: &[(&'static str, &'static str)], remove: Option<&'static str>| {
        let mut pairs: Vec<(&str, &str)> = vec![("_csrf", b.csrf.as_str())];
        for (d, t) in rows {
            pairs.push(("day", d));
            pairs.push(("time", t));
        }
        if let Some(r) = remove {
            pairs.push(("remove", r));
        }
        pairs
    };
    let pairs = slots_form(&[("monday", "09:30"), ("friday", "17:00")], None);
    let r = submit(&app, &b, "/app/queue", &pairs).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.header("location"), Some("/app/queue?done=saved"));
    let slots = get_json(&app, &key, "/v1/queue/slots").await;
    assert_eq!(
        slots["slots"],
        json!([{"day": "monday", "time": "09:30"}, {"day": "friday", "time": "17:00"}])
    );
    assert_eq!(slots["timezone"], "Europe/Berlin");

    // An invalid time: the API's error on its row, the slots as they were, the row as typed.
    let pairs = slots_form(
        &[
            ("monday", "09:30"),
            ("friday", "17:00"),
            ("sunday", "25:99"),
        ],
        None,
    );
    let r = submit(&app, &b, "/app/queue", &pairs).await;
    assert_field_error(&r, "slots", "24-hour local time");
    assert!(r.text.contains("25:99"));
    assert_eq!(get_json(&app, &key, "/v1/queue/slots").await, slots);

    // Remove the first row, add a Wednesday: the whole set replaced.
    let pairs = slots_form(
        &[
            ("monday", "09:30"),
            ("friday", "17:00"),
            ("wednesday", "12:15"),
        ],
        Some("0"),
    );
    let r = submit(&app, &b, "/app/queue", &pairs).await;
    assert_eq!(r.status, 303, "{}", r.text);
    let now = get_json(&app, &key, "/v1/queue/slots").await;
    assert_eq!(
        now["slots"],
        json!([{"day": "wednesday", "time": "12:15"}, {"day": "friday", "time": "17:00"}])
    );
    // Without the token: nothing.
    let pairs: Vec<(&str, &str)> = vec![("day", "monday"), ("time", "08:00")];
    let r = submit(&app, &b, "/app/queue", &pairs).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(get_json(&app, &key, "/v1/queue/slots").await, now);

    // The queue below: a post in the next slot, at its local time. The clock starts on
    // Sunday 2026-11-22, so the next slot is Wednesday 25 November, 12:15 in Berlin.
    let post = draft(&app, &key, &[&acct], "Into the queue we go").await;
    act_ok(
        &app,
        &key,
        &post,
        "schedule",
        Some(json!({"slot": "next"})),
        "scheduled",
    )
    .await;
    let r = page(&app, &b, "/app/queue").await;
    assert_eq!(r.status, 200);
    let row = r
        .text
        .split(&format!("data-post-id=\"{post}\""))
        .nth(1)
        .expect("the queued post")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(row.contains("Wed 25 Nov 2026 12:15"), "{row}");
    assert!(row.contains("Into the queue we go"), "{row}");
}

async fn a_member_reads_these_pages_and_changes_nothing() {
    let (app, b, key, acct) = world(Role::Member).await;
    let id = api_feed(&app, &key, json!({"url": URL, "account_ids": [acct]})).await;
    let r = submit(
        &app,
        &b,
        "/app/queue",
        &[("_csrf", &b.csrf), ("day", "monday"), ("time", "09:00")],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    let slots = get_json(&app, &key, "/v1/queue/slots").await;
    assert_eq!(slots["slots"], json!([]));

    for path in ["/app/feeds", "/app/queue", "/app/analytics"] {
        let r = page(&app, &b, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(r.text.contains("ask an owner or admin") || path == "/app/analytics");
    }
    let r = page(&app, &b, "/app/feeds").await;
    assert!(r.text.contains(URL), "members read feeds");
    assert!(!r.text.contains("action=\"/app/feeds\""), "but get no form");
    let r = page(&app, &b, "/app/queue").await;
    assert!(!r.text.contains("action=\"/app/queue\""));

    let r = submit(
        &app,
        &b,
        "/app/feeds",
        &[
            ("_csrf", &b.csrf),
            ("url", "https://news.example.org/atom"),
            ("account_id", &acct),
        ],
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    for action in ["delete", "disable"] {
        let path = format!("/app/feeds/{id}/{action}");
        let r = submit(&app, &b, &path, &[("_csrf", &b.csrf)]).await;
        assert_eq!(r.status, 403, "{action}: {}", r.text);
    }
    assert_eq!(feeds(&app).await, 1);
    let f = get_json(&app, &key, &format!("/v1/feeds/{id}")).await;
    assert_eq!(f["enabled"], true);
}

async fn the_analytics_charts_draw_the_posts_published() {
    let (app, b, key, acct) = world(Role::Owner).await;
    let r = page(&app, &b, "/app/analytics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.text.contains("Nothing published in these 30 days yet"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("<svg"), "no empty charts");

    // Three posts today (one to two accounts), one more tomorrow, a draft never.
    let second = app.sandbox_account(&key, "second").await;
    for (text, accounts) in [
        ("one", vec![acct.as_str(), second.as_str()]),
        ("two", vec![acct.as_str()]),
    ] {
        let id = draft(&app, &key, &accounts, text).await;
        act_ok(&app, &key, &id, "publish", None, "publishing").await;
    }
    drain(&app).await;
    // 01:00 the next day (UTC, the workspace's zone); sessions last 12 hours.
    app.clock.advance(std::time::Duration::from_secs(15 * 3600));
    let b = sign_in(&app, "ada@example.com").await;
    let id = draft(&app, &key, &[&second], "three").await;
    act_ok(&app, &key, &id, "publish", None, "publishing").await;
    drain(&app).await;
    draft(&app, &key, &[&acct], "never published").await;
    assert_eq!(app.publisher().collect_metrics().await.unwrap(), 4);

    let r = page(&app, &b, "/app/analytics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("Nothing published"));
    let published: Vec<&str> = r
        .text
        .split("<rect class=\"bar s-published\"")
        .skip(1)
        .map(|s| s.split("</rect>").next().unwrap())
        .collect();
    assert_eq!(published.len(), 2, "one bar per day with posts");
    assert!(published[0].contains("<title>Sun 22 Nov 2026: 3 published</title>"));
    assert!(published[1].contains("<title>Mon 23 Nov 2026: 1 published</title>"));
    assert!(
        r.text.contains("viewBox=\"0 0 700 "),
        "scales to the screen"
    );
    assert!(
        !r.text.contains("style="),
        "no inline styles (the CSP blocks them)"
    );
    for chart in [
        "chart-published",
        "chart-engagement",
        "chart-impressions",
        "chart-accounts",
    ] {
        assert!(r.text.contains(&format!("id=\"{chart}\"")), "{chart}");
    }
    // Engagement: the sandbox's metrics, drawn and in the table.
    assert!(r.text.contains("class=\"bar s-likes\""));
    assert!(r.text.contains("class=\"dot s-impressions\""));
    let accounts = get_json(
        &app,
        &key,
        "/v1/accounts/analytics?from=2026-11-01T00:00:00Z&to=2026-11-24T00:00:00Z",
    )
    .await;
    let likes: i64 = accounts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["likes"].as_i64().unwrap())
        .sum();
    assert!(likes > 0);
    assert!(
        r.text
            .contains(&format!("<span class=\"n\">{likes}</span> likes"))
    );
    // Per account: a bar each, named.
    let section = r.text.split("id=\"chart-accounts\"").nth(1).unwrap();
    assert!(section.contains("brand (sandbox)") && section.contains("second (sandbox)"));
    assert!(section.contains("2 posts"), "each account's posts");

    // Ranges: a shorter one; a made-up one is the API's error.
    let r = page(&app, &b, "/app/analytics?days=7").await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("<option value=\"7\" selected"));
    for bad in ["abc", "0", "1000"] {
        let r = page(&app, &b, &format!("/app/analytics?days={bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

/// Forms post to this server only, but on the page whose form sends the browser on to a
/// network (connecting an account): `form-action` also covers the redirect after a submission.
async fn only_the_accounts_page_lets_its_forms_lead_to_another_site() {
    let (app, b, ..) = world(Role::Admin).await;
    for path in [
        "/app/keys",
        "/app/feeds",
        "/app/posts/new",
        "/app/analytics",
    ] {
        let r = page(&app, &b, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let csp = r.header("content-security-policy").unwrap();
        assert!(csp.contains("form-action 'self';"), "{path}: {csp}");
    }
    let r = page(&app, &b, "/app/accounts").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let csp = r.header("content-security-policy").unwrap();
    assert!(csp.contains("form-action 'self' https: http:;"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

both!(
    tests: only_the_accounts_page_lets_its_forms_lead_to_another_site,
    the_feeds_page_lists_creates_changes_and_deletes,
    a_refused_feed_form_shows_the_apis_error_by_its_field,
    another_workspaces_feed_is_a_404_page,
    queue_slots_are_saved_through_the_form_in_the_workspaces_zone,
    a_member_reads_these_pages_and_changes_nothing,
    the_analytics_charts_draw_the_posts_published,
);
