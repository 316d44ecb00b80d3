//! The knowledge base through the application layer, on SQLite and PostgreSQL: a small corpus
//! where natural questions find the right passage first, queries full of search syntax that
//! must not error, brand and mode scoping, deleting, the plan's bounds (with adds racing for
//! the last place), and ranking by meaning with a deterministic fake embedder.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use crier_ai::{AiError, Embedder};
use crier_app::kb::{EMBED_BATCH, Hit, NewDocument};
use crier_app::{App, Caller, Tenant};
use crier_core::ids::BrandId;
use crier_core::{ErrorCode, ManualClock, Plan, Scope};
use crier_store::Store;
use crier_testdb::{TestDb, both};

/// (kind, title, content): a bakery's knowledge, one subject per document.
const CORPUS: &[(&str, &str, &str)] = &[
    (
        "markdown",
        "Opening hours",
        "# Opening hours\n\nThe bakery opens at 7am Monday to Friday and at 8am on Saturdays. \
         On Sundays we open at 9am and close at 1pm.\n\nWe are closed on public holidays.",
    ),
    (
        "text",
        "Refund policy",
        "Refund policy\n\nIf you are not happy with a purchase, you can return it within 30 days \
         for a full refund. Refunds go back to the original payment method within 5 business \
         days.\n\nGift cards and custom cakes cannot be refunded.",
    ),
    (
        "html",
        "Shipping",
        "<h1>Shipping</h1><p>Orders placed before noon ship the same day.</p><p>Standard \
         delivery takes 3 to 5 working days within the country; express delivery arrives the \
         next day. International shipping takes 7 to 14 days.</p>",
    ),
    (
        "text",
        "Sourdough subscription",
        "Launching in March: the sourdough subscription. Subscribers receive a fresh sourdough \
         loaf every week for 12 euros a month. Sign up in the shop or online.",
    ),
    (
        "markdown",
        "Banana bread",
        "## Banana bread recipe\n\nMash three ripe bananas and mix them with 75 grams of melted \
         butter, 150 grams of sugar, one egg, a teaspoon of baking soda and 190 grams of \
         flour.\n\nBake the banana bread at 175 degrees for 60 minutes.",
    ),
    (
        "text",
        "Allergens",
        "All our breads may contain traces of nuts, sesame and soy. Gluten-free loaves are baked \
         on Tuesdays in a separate oven.",
    ),
    (
        "html",
        "Catering",
        "<p>Catering for events: we deliver platters of pastries for weddings, office meetings \
         and birthdays.</p><p>Order at least 48 hours in advance; the minimum order is 20 \
         people.</p>",
    ),
    (
        "text",
        "Jobs",
        "We are hiring a pastry chef and two sales assistants. Send your CV by email; \
         applications close at the end of the month.",
    ),
    (
        "text",
        "Loyalty card",
        "Every tenth coffee is free with the loyalty card. Stamps never expire, and the card \
         works in both shops.",
    ),
    (
        "markdown",
        "Finding us",
        "Our shop is at **12 Mill Street**, next to the train station. Free parking is \
         available behind the building for 30 minutes.",
    ),
    (
        "text",
        "Coffee and wifi",
        "We serve espresso, cappuccino and oat milk lattes. Free wifi for customers: the \
         password is printed on the receipt.",
    ),
    (
        "html",
        "Sustainability",
        "<div>Unsold bread is donated to the food bank every evening.</div><div>Our packaging \
         is compostable and our electricity comes from renewable sources.</div>",
    ),
    (
        "text",
        "Payments",
        "We accept cash, debit cards, credit cards and mobile payments. Orders over 50 euros \
         can be paid by invoice.",
    ),
    (
        "markdown",
        "Newsletter",
        "Our newsletter goes out monthly with seasonal recipes. To unsubscribe, use the link at \
         the bottom of every email; we never sell your address.",
    ),
];

/// A natural question and the title of the document whose passage must come first, with a
/// word that passage holds.
const QUESTIONS: &[(&str, &str, &str)] = &[
    ("When do you open on Sunday?", "Opening hours", "Sundays"),
    (
        "Can I get a refund if I return something?",
        "Refund policy",
        "refund",
    ),
    ("How long does delivery take?", "Shipping", "delivery"),
    (
        "How much does the sourdough subscription cost?",
        "Sourdough subscription",
        "12 euros",
    ),
    (
        "How long should banana bread bake?",
        "Banana bread",
        "175 degrees",
    ),
    ("Do your loaves contain nuts?", "Allergens", "nuts"),
    ("Can you cater a wedding?", "Catering", "weddings"),
    ("Are you hiring?", "Jobs", "hiring"),
    ("Is every tenth coffee free?", "Loyalty card", "tenth"),
    ("Where can I park my car?", "Finding us", "parking"),
    ("What is the wifi password?", "Coffee and wifi", "password"),
    (
        "What happens to unsold bread?",
        "Sustainability",
        "food bank",
    ),
    ("Can I pay by credit card?", "Payments", "credit"),
    (
        "How do I unsubscribe from the newsletter?",
        "Newsletter",
        "unsubscribe",
    ),
];

/// Queries made of search syntax on either backend; each must answer, not error.
const HOSTILE: &[&str] = &[
    "\"",
    "\"unterminated phrase",
    "refund*",
    "*",
    "NEAR(refund policy)",
    "refund NEAR policy",
    "refund AND",
    "OR",
    "NOT refund",
    "-refund",
    "text:refund",
    "title:x",
    "{text}: refund",
    "^refund",
    "refund:*",
    "refund & policy | !cake",
    "(refund",
    "refund)",
    "'refund'",
    "refund <-> policy",
    "\\",
    "%_",
    "'; DROP TABLE kb_documents; --",
    "\u{0}refund",
    "réfund café naïve",
    "🍞 bread 🥐",
];

struct World {
    app: App,
    store: Store,
    caller: Caller,
    db: TestDb,
}

fn caller_on(ws: &crier_core::ids::WorkspaceId, livemode: bool, plan: Plan) -> Caller {
    Caller {
        tenant: Tenant {
            workspace: ws.clone(),
            livemode,
        },
        plan: Arc::new(plan),
        scopes: [Scope::KbRead, Scope::KbWrite].into_iter().collect(),
        actor: "test".into(),
        restriction: Default::default(),
    }
}

fn self_hosted() -> Plan {
    Plan::defaults()["self-hosted"].clone()
}

async fn world_with(embedder: Option<Arc<dyn Embedder>>) -> World {
    let db = TestDb::fresh()
        .await
        .expect("a database of the variant's backend");
    let store = db.store.clone();
    let clock = ManualClock::new("2026-11-22T10:00:00Z".parse().unwrap());
    let ws = store
        .create_workspace("acme", "self-hosted", 0)
        .await
        .unwrap();
    let mut app = App::new(
        store.clone(),
        Arc::new(clock),
        crier_networks::Networks::default(),
        &Plan::defaults(),
        Arc::new(tokio::sync::Notify::new()),
    );
    if let Some(e) = embedder {
        app = app.with_embedder(e);
    }
    World {
        app,
        store,
        caller: caller_on(&ws.id, true, self_hosted()),
        db,
    }
}

async fn world() -> World {
    world_with(None).await
}

fn doc(kind: &str, title: &str, content: &str) -> NewDocument {
    NewDocument {
        title: Some(title.into()),
        kind: kind.into(),
        content: Some(content.into()),
        ..NewDocument::default()
    }
}

async fn add_corpus(w: &World) {
    for (kind, title, content) in CORPUS {
        w.app
            .kb()
            .add(&w.caller, doc(kind, title, content))
            .await
            .unwrap_or_else(|e| panic!("{title}: {e:?}"));
    }
}

async fn search(w: &World, c: &Caller, q: &str, brand: Option<&BrandId>) -> Vec<Hit> {
    w.app
        .kb()
        .search(c, q, brand, 10)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e:?}"))
}

async fn natural_questions_find_the_right_passage_first() {
    let w = world().await;
    add_corpus(&w).await;
    let mut wrong = Vec::new();
    for (q, title, word) in QUESTIONS {
        let hits = search(&w, &w.caller, q, None).await;
        let first = hits.first();
        if first.is_none_or(|h| h.title != *title || !h.passage.contains(word)) {
            wrong.push(format!(
                "{q} -> {:?}",
                hits.iter().map(|h| (&h.title, h.score)).collect::<Vec<_>>()
            ));
        }
        if let Some(h) = first {
            assert_eq!(h.score, 1.0, "the best text match scores 1.0");
            assert!(hits.windows(2).all(|p| p[0].score >= p[1].score), "{q}");
        }
    }
    assert!(wrong.is_empty(), "ranked wrong:\n{}", wrong.join("\n"));
    // `passages_for` gives the same passages' text, best first.
    let texts = w
        .app
        .kb()
        .passages_for(&w.caller, None, "Is every tenth coffee free?", 3)
        .await
        .unwrap();
    assert_eq!(texts.len(), 3, "coffee, and two other things that are free");
    assert!(texts[0].contains("tenth coffee"), "{texts:?}");
}

async fn search_syntax_in_queries_never_errors() {
    let w = world().await;
    add_corpus(&w).await;
    for q in HOSTILE {
        let hits = search(&w, &w.caller, q, None).await;
        if q.contains("refund") && !q.starts_with('\u{0}') {
            assert!(
                hits.iter().any(|h| h.title == "Refund policy"),
                "{q}: the word still counts: {hits:?}"
            );
        }
    }
    // Nothing to search for: nothing found, no error.
    for q in ["", "   ", "the and of", "what is it?", "\"*-:()"] {
        assert!(search(&w, &w.caller, q, None).await.is_empty(), "{q:?}");
    }
    // Words found nowhere.
    assert!(
        search(&w, &w.caller, "zeppelin xylophone", None)
            .await
            .is_empty()
    );
    // Bounds of a query.
    let long = "a".repeat(crier_app::kb::MAX_QUERY + 1);
    let e = w
        .app
        .kb()
        .search(&w.caller, &long, None, 10)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code, e.param.as_deref()),
        (ErrorCode::InvalidRequest, Some("q"))
    );
    assert!(
        w.app
            .kb()
            .search(&w.caller, "refund", None, 0)
            .await
            .unwrap()
            .is_empty()
    );
    // Limits above the maximum are the maximum.
    let many = w
        .app
        .kb()
        .search(&w.caller, "we our the bread free days", None, 1000)
        .await
        .unwrap();
    assert!(!many.is_empty() && many.len() <= crier_app::kb::MAX_SEARCH_LIMIT);
}

async fn brands_and_modes_see_their_own_knowledge() {
    let w = world().await;
    let kb = w.app.kb();
    let brand = |name: &str| crier_app::brands::NewBrand {
        name: name.into(),
        ..Default::default()
    };
    let x = w
        .app
        .brands()
        .create(&w.caller, brand("X"))
        .await
        .unwrap()
        .id;
    let y = w
        .app
        .brands()
        .create(&w.caller, brand("Y"))
        .await
        .unwrap()
        .id;
    let mut shared = doc(
        "text",
        "Shared",
        "Our guarantee: every loaf is baked fresh today.",
    );
    shared.brand_id = None;
    kb.add(&w.caller, shared).await.unwrap();
    let mut for_x = doc(
        "text",
        "Brand X",
        "Brand X guarantee: croissants baked fresh.",
    );
    for_x.brand_id = Some(x.to_string());
    let for_x = kb.add(&w.caller, for_x).await.unwrap();
    assert_eq!(for_x.brand_id.as_ref(), Some(&x));
    let mut for_y = doc("text", "Brand Y", "Brand Y guarantee: bagels baked fresh.");
    for_y.brand_id = Some(y.to_string());
    kb.add(&w.caller, for_y).await.unwrap();

    let titles = |hits: Vec<Hit>| {
        let mut t: Vec<String> = hits.into_iter().map(|h| h.title).collect();
        t.sort();
        t
    };
    assert_eq!(
        titles(search(&w, &w.caller, "guarantee", Some(&x)).await),
        vec!["Brand X", "Shared"]
    );
    assert_eq!(
        titles(search(&w, &w.caller, "guarantee", Some(&y)).await),
        vec!["Brand Y", "Shared"]
    );
    assert_eq!(
        titles(search(&w, &w.caller, "guarantee", None).await),
        vec!["Shared"]
    );
    let texts = kb
        .passages_for(&w.caller, Some(&x), "croissants", 5)
        .await
        .unwrap();
    assert_eq!(texts, vec!["Brand X guarantee: croissants baked fresh."]);
    // Listing by brand.
    let listed = kb.list(&w.caller, Some(&x), 50, 0).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, for_x.id);
    assert_eq!(
        kb.list(&w.caller, None, 50, 0).await.unwrap().items.len(),
        3
    );
    // A bad brand id.
    let mut bad = doc("text", "Bad", "x");
    bad.brand_id = Some("acct_0000000000000000000000".into());
    let e = kb.add(&w.caller, bad).await.unwrap_err();
    assert_eq!(e.param.as_deref(), Some("brand_id"));

    // Test mode sees nothing of live mode, and the other way round.
    let test = caller_on(w.caller.workspace(), false, self_hosted());
    assert!(search(&w, &test, "guarantee", Some(&x)).await.is_empty());
    assert!(kb.list(&test, None, 50, 0).await.unwrap().items.is_empty());
    let e = kb.get(&test, for_x.id.as_str()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    let e = kb.delete(&test, for_x.id.as_str()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    kb.add(&test, doc("text", "Test", "A guarantee in test mode."))
        .await
        .unwrap();
    assert_eq!(
        titles(search(&w, &test, "guarantee", None).await),
        vec!["Test"]
    );
    assert_eq!(
        titles(search(&w, &w.caller, "guarantee", None).await),
        vec!["Shared"]
    );
    // Another workspace sees none of it.
    let other = w
        .store
        .create_workspace("other", "self-hosted", 0)
        .await
        .unwrap();
    let theirs = caller_on(&other.id, true, self_hosted());
    assert!(search(&w, &theirs, "guarantee", Some(&x)).await.is_empty());
    assert_eq!(
        kb.get(&theirs, for_x.id.as_str()).await.unwrap_err().code,
        ErrorCode::NotFound
    );
}

async fn deleting_a_document_removes_its_passages_from_search() {
    let w = world().await;
    add_corpus(&w).await;
    let kb = w.app.kb();
    let hits = search(&w, &w.caller, "banana", None).await;
    let id = hits[0].document_id.clone();
    let (stored, content) = kb.get(&w.caller, id.as_str()).await.unwrap();
    assert_eq!(stored.title, "Banana bread");
    assert_eq!(stored.passages, 1);
    assert_eq!(stored.chars, content.chars().count() as u64);
    assert!(
        content.starts_with("Banana bread recipe\n\nMash three ripe bananas"),
        "{content}"
    );
    let deleted = kb.delete(&w.caller, id.as_str()).await.unwrap();
    assert_eq!(deleted, stored);
    assert!(search(&w, &w.caller, "banana", None).await.is_empty());
    assert_eq!(
        kb.delete(&w.caller, id.as_str()).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    // The other documents are still found.
    assert!(!search(&w, &w.caller, "refund", None).await.is_empty());
    if w.store.backend() == crier_store::Backend::Sqlite {
        // The FTS5 index agrees with its content table.
        w.db.execute("INSERT INTO kb_passages_fts (kb_passages_fts) VALUES ('integrity-check');")
            .await;
    }
    let left = w.db.query_i64("SELECT COUNT(*) FROM kb_passages").await;
    assert_eq!(left, vec![CORPUS.len() as i64 - 1]);
}

async fn long_documents_are_cut_into_bounded_passages() {
    let w = world().await;
    let kb = w.app.kb();
    let section = |i: usize| {
        format!(
            "## Section {i}\n\n{}",
            format!("Sentence number {i} talks about topic{i} at some length. ").repeat(30)
        )
    };
    let md: String = (0..20).map(section).collect::<Vec<_>>().join("\n\n");
    let d = kb
        .add(&w.caller, doc("markdown", "Long", &md))
        .await
        .unwrap();
    let (_, content) = kb.get(&w.caller, d.id.as_str()).await.unwrap();
    let passages: Vec<&str> = content.split("\n\n").collect();
    assert!(d.passages >= 40, "{}", d.passages);
    for p in &passages {
        assert!(p.chars().count() <= 1000);
    }
    // Each section's passages hold only its own sentences.
    let hits = search(&w, &w.caller, "topic7", None).await;
    assert!(!hits.is_empty());
    for h in &hits {
        assert!(h.passage.contains("topic7"), "{}", h.passage);
        assert!(!h.passage.contains("topic8"), "{}", h.passage);
    }
    // Bounds.
    let e = kb
        .add(
            &w.caller,
            doc(
                "text",
                "Big",
                &"x".repeat(crier_app::kb::MAX_CONTENT_CHARS + 1),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("content"));
    let headings: String = (0..2100).map(|i| format!("# h{i}\n\n")).collect();
    let e = kb
        .add(&w.caller, doc("markdown", "Many", &headings))
        .await
        .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("content"));
    assert!(e.message.contains("2000"), "{}", e.message);
    let e = kb
        .add(
            &w.caller,
            doc("html", "Empty", "<p> </p><script>x</script>"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.param.as_deref(), Some("content"));
    assert_eq!(
        kb.list(&w.caller, None, 50, 0).await.unwrap().items.len(),
        1
    );
    // Without a title: the source's own.
    let mut untitled = doc("html", "", "<title>Our menu</title><p>Bread.</p>");
    untitled.title = None;
    assert_eq!(kb.add(&w.caller, untitled).await.unwrap().title, "Our menu");
    let mut untitled = doc("text", "", "First line of text\nand more.");
    untitled.title = None;
    assert_eq!(
        kb.add(&w.caller, untitled).await.unwrap().title,
        "First line of text and more."
    );
}

fn limited(documents: Option<u64>, chars: Option<u64>) -> Plan {
    Plan {
        kb_documents: documents,
        kb_chars: chars,
        ..self_hosted()
    }
}

async fn plan_bounds_hold_against_racing_adds() {
    let w = world().await;
    let c = caller_on(w.caller.workspace(), true, limited(Some(3), None));
    let kb = w.app.kb();
    kb.add(&c, doc("text", "1", "one")).await.unwrap();
    kb.add(&c, doc("text", "2", "two")).await.unwrap();
    // Five adds race for the last place: one gets it.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5 {
        let app = w.app.clone();
        let c = c.clone();
        tasks.spawn(async move {
            app.kb()
                .add(&c, doc("text", &format!("racer {i}"), "racing text"))
                .await
        });
    }
    let mut won = 0;
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(e.code, ErrorCode::QuotaExceeded, "{e:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(kb.list(&c, None, 50, 0).await.unwrap().items.len(), 3);
    // Test mode counts apart, with the same bound.
    let test = caller_on(w.caller.workspace(), false, limited(Some(3), None));
    kb.add(&test, doc("text", "t", "test")).await.unwrap();

    // Characters: 20 allowed.
    let w = world().await;
    let c = caller_on(w.caller.workspace(), true, limited(None, Some(20)));
    let kb = w.app.kb();
    kb.add(&c, doc("text", "a", "0123456789")).await.unwrap();
    let e = kb
        .add(&c, doc("text", "b", "01234567890"))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::QuotaExceeded);
    assert!(e.message.contains("20"), "{}", e.message);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let app = w.app.clone();
        let c = c.clone();
        tasks.spawn(async move { app.kb().add(&c, doc("text", "r", "abcdefgh")).await });
    }
    let mut won = 0;
    while let Some(r) = tasks.join_next().await {
        if r.unwrap().is_ok() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "10 + 8 fits 20, 10 + 8 + 8 does not");
    assert_eq!(w.store.kb_usage(&c.tenant).await.unwrap().chars, 18);
}

/// Vectors from a fixed vocabulary: one dimension per concept, counting the concept's words.
struct FakeEmbedder {
    calls: AtomicUsize,
    largest_batch: AtomicUsize,
    fail: bool,
}

const CONCEPTS: &[&[&str]] = &[
    &[
        "refund",
        "refunds",
        "reimburse",
        "repaid",
        "back",
        "return",
        "returns",
    ],
    &["price", "prices", "euros", "cost", "cash"],
    &["bread", "loaf", "loaves", "baked"],
];

fn embed_text(t: &str) -> Vec<f32> {
    let mut v = vec![0.0f32; CONCEPTS.len() + 1];
    for w in t
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
    {
        match CONCEPTS.iter().position(|c| c.contains(&w.as_str())) {
            Some(i) => v[i] += 1.0,
            None => v[CONCEPTS.len()] += 0.01,
        }
    }
    v
}

#[async_trait]
impl Embedder for FakeEmbedder {
    async fn embed(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, AiError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.largest_batch.fetch_max(inputs.len(), Ordering::SeqCst);
        if self.fail {
            return Err(AiError::Upstream("the embeddings server is down".into()));
        }
        Ok(inputs.iter().map(|t| embed_text(t)).collect())
    }
}

fn fake(fail: bool) -> Arc<FakeEmbedder> {
    Arc::new(FakeEmbedder {
        calls: AtomicUsize::new(0),
        largest_batch: AtomicUsize::new(0),
        fail,
    })
}

const MONEY: &str = "Money: prices are in euros, and money is taken as cash or money order.";
const REFUNDS: &str = "Returns: we reimburse any purchase, and the money goes back to you.";

/// The corpus and the two passages about money.
async fn add_money(w: &World) {
    add_corpus(w).await;
    for (t, c) in [("Money", MONEY), ("Refunds", REFUNDS)] {
        w.app.kb().add(&w.caller, doc("text", t, c)).await.unwrap();
    }
}

/// Only "money" matches as text (three times in one passage, once in the other); the fake
/// embedder knows "repaid" is about refunds.
const REPAID: &str = "Will my money be repaid?";

async fn meaning_reranks_text_matches_when_an_embedder_is_configured() {
    // Text alone: the passage that says "money" most comes first.
    let w = world().await;
    add_money(&w).await;
    let hits = search(&w, &w.caller, REPAID, None).await;
    let titles: Vec<&str> = hits.iter().map(|h| h.title.as_str()).collect();
    assert_eq!(titles, vec!["Money", "Refunds"]);

    // With meaning: the refund passage, which is about getting money back.
    let e = fake(false);
    let w = world_with(Some(e.clone())).await;
    add_money(&w).await;
    let hits = search(&w, &w.caller, REPAID, None).await;
    let titles: Vec<&str> = hits.iter().map(|h| h.title.as_str()).collect();
    assert_eq!(titles, vec!["Refunds", "Money"], "{hits:?}");
    assert!(hits[0].score > hits[1].score);
    // Vectors were stored with the passages.
    let stored = w
        .store
        .search_kb(&w.caller.tenant, None, &["money".into()], 10)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    for m in &stored {
        assert_eq!(m.embedding.as_deref(), Some(embed_text(&m.text).as_slice()));
    }
    // A long document is embedded in bounded batches.
    let paras: String = (0..150)
        .map(|i| {
            format!(
                "Paragraph {i} about bread. {}\n\n",
                "More words here. ".repeat(40)
            )
        })
        .collect();
    let d = w
        .app
        .kb()
        .add(&w.caller, doc("text", "Long", &paras))
        .await
        .unwrap();
    assert!(d.passages as usize > EMBED_BATCH * 2, "{}", d.passages);
    assert_eq!(e.largest_batch.load(Ordering::SeqCst), EMBED_BATCH);

    // A failing embedder: documents are still added and found, by text.
    let e = fake(true);
    let w = world_with(Some(e.clone())).await;
    add_money(&w).await;
    let hits = search(&w, &w.caller, REPAID, None).await;
    assert_eq!(hits[0].title, "Money", "{hits:?}");
    assert_eq!(
        e.calls.load(Ordering::SeqCst),
        CORPUS.len() + 2 + 1,
        "asked once per document and once for the query"
    );
    let stored = w
        .store
        .search_kb(&w.caller.tenant, None, &["money".into()], 10)
        .await
        .unwrap();
    assert!(stored.iter().all(|m| m.embedding.is_none()));
}

both!(
    tests: natural_questions_find_the_right_passage_first,
    search_syntax_in_queries_never_errors,
    brands_and_modes_see_their_own_knowledge,
    deleting_a_document_removes_its_passages_from_search,
    long_documents_are_cut_into_bounded_passages,
    plan_bounds_hold_against_racing_adds,
    meaning_reranks_text_matches_when_an_embedder_is_configured,
);

#[test]
fn the_corpus_has_one_question_per_document() {
    let titles: BTreeMap<&str, usize> = CORPUS.iter().map(|(_, t, _)| (*t, 0)).collect();
    assert_eq!(titles.len(), CORPUS.len());
    for (_, t, _) in QUESTIONS {
        assert!(titles.contains_key(t), "{t}");
    }
    assert_eq!(QUESTIONS.len(), CORPUS.len());
}
