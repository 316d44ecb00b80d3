//! The knowledge base's storage on both backends: documents with their passages and vectors,
//! tenancy and modes, the plan's bounds decided in the insert's transaction (nothing written
//! when refused), deletes that take the passages and their full-text rows along, and search
//! terms that are never syntax.

use crier_core::Tenant;
use crier_core::ids::{BrandId, DocumentId, WorkspaceId};
use crier_store::{KbDocument, KbFilter, KbInsert, KbKind, NewPassage, Store};
use crier_testdb::{TestDb, both};

const T0: i64 = 1_800_000_000_000;

fn doc(
    ws: &WorkspaceId,
    livemode: bool,
    brand: Option<&BrandId>,
    passages: &[NewPassage],
) -> KbDocument {
    KbDocument {
        id: DocumentId::generate(),
        workspace_id: ws.clone(),
        livemode,
        brand_id: brand.cloned(),
        title: "Doc".into(),
        kind: KbKind::Markdown,
        source_url: None,
        chars: passages.iter().map(|p| p.text.chars().count() as u64).sum(),
        passages: passages.len() as u64,
        created_at: T0,
    }
}

fn passage(text: &str, embedding: Option<Vec<f32>>) -> NewPassage {
    NewPassage {
        text: text.into(),
        embedding,
    }
}

fn terms(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

async fn workspace(store: &Store, name: &str) -> Tenant {
    Tenant {
        workspace: store.create_workspace(name, "free", T0).await.unwrap().id,
        livemode: true,
    }
}

both!(
    documents_round_trip_with_their_passages,
    |db: TestDb| async move {
        let store = db.store.clone();
        let t = workspace(&store, "acme").await;
        let brand = BrandId::generate();
        let ps = vec![
            passage(
                "Opening hours: we open at seven.",
                Some(vec![0.5, -1.25, 3.0]),
            ),
            passage("Closed on public holidays.", None),
        ];
        let d = doc(&t.workspace, true, Some(&brand), &ps);
        assert_eq!(
            store.insert_kb_document(&d, &ps, None, None).await.unwrap(),
            KbInsert::Inserted
        );
        assert_eq!(
            store.get_kb_document(&t, &d.id).await.unwrap(),
            Some(d.clone())
        );
        assert_eq!(
            store.kb_document_passages(&t, &d.id).await.unwrap(),
            vec![
                "Opening hours: we open at seven.",
                "Closed on public holidays."
            ]
        );
        // Vectors come back as stored; none stays none.
        let found = store
            .search_kb(&t, Some(&brand), &terms(&["open", "holidays"]), 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        for m in &found {
            let expected = ps.iter().find(|p| p.text == m.text).unwrap();
            assert_eq!(m.embedding, expected.embedding);
            assert_eq!(m.document_id, d.id);
            assert!(m.score > 0.0);
        }
        // Brand filters: listing by brand, and search without the brand finds nothing.
        let other_brand = BrandId::generate();
        assert_eq!(
            store
                .list_kb_documents(&t, KbFilter::Brand(&brand), 10, 0)
                .await
                .unwrap()
                .items,
            vec![d.clone()]
        );
        assert!(
            store
                .list_kb_documents(&t, KbFilter::Brand(&other_brand), 10, 0)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert!(
            store
                .search_kb(&t, None, &terms(&["open"]), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .search_kb(&t, Some(&other_brand), &terms(&["open"]), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Another mode, another workspace: nothing.
        let test = Tenant {
            livemode: false,
            ..t.clone()
        };
        let other = workspace(&store, "other").await;
        for x in [&test, &other] {
            assert_eq!(store.get_kb_document(x, &d.id).await.unwrap(), None);
            assert!(
                store
                    .kb_document_passages(x, &d.id)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert_eq!(store.delete_kb_document(x, &d.id).await.unwrap(), None);
            assert!(
                store
                    .search_kb(x, Some(&brand), &terms(&["open"]), 10)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(
                store
                    .list_kb_documents(x, KbFilter::All, 10, 0)
                    .await
                    .unwrap()
                    .items
                    .is_empty()
            );
        }
        // Delete: the document, its passages and their full-text rows.
        assert_eq!(
            store.delete_kb_document(&t, &d.id).await.unwrap(),
            Some(d.clone())
        );
        assert_eq!(store.get_kb_document(&t, &d.id).await.unwrap(), None);
        assert!(
            store
                .search_kb(&t, Some(&brand), &terms(&["open"]), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            db.query_i64("SELECT COUNT(*) FROM kb_passages").await,
            vec![0]
        );
        if store.backend() == crier_store::Backend::Sqlite {
            assert_eq!(
                db.query_i64(
                    "SELECT COUNT(*) FROM kb_passages_fts WHERE kb_passages_fts MATCH 'open'"
                )
                .await,
                vec![0]
            );
            db.execute("INSERT INTO kb_passages_fts (kb_passages_fts) VALUES ('integrity-check');")
                .await;
        }
    }
);

both!(bounds_are_decided_in_the_insert, |db: TestDb| async move {
    let store = db.store.clone();
    let t = workspace(&store, "acme").await;
    let ps = vec![passage("0123456789", None)];
    for _ in 0..2 {
        let d = doc(&t.workspace, true, None, &ps);
        assert_eq!(
            store
                .insert_kb_document(&d, &ps, Some(2), Some(100))
                .await
                .unwrap(),
            KbInsert::Inserted
        );
    }
    let d = doc(&t.workspace, true, None, &ps);
    assert_eq!(
        store
            .insert_kb_document(&d, &ps, Some(2), None)
            .await
            .unwrap(),
        KbInsert::TooManyDocuments { used: 2, limit: 2 }
    );
    assert_eq!(
        store
            .insert_kb_document(&d, &ps, None, Some(25))
            .await
            .unwrap(),
        KbInsert::TooManyChars {
            used: 20,
            limit: 25
        }
    );
    assert_eq!(
        store.get_kb_document(&t, &d.id).await.unwrap(),
        None,
        "nothing written"
    );
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM kb_passages").await,
        vec![2]
    );
    let usage = store.kb_usage(&t).await.unwrap();
    assert_eq!((usage.documents, usage.chars), (2, 20));
    // The other mode counts apart.
    let test = Tenant {
        livemode: false,
        ..t.clone()
    };
    let d = doc(&t.workspace, false, None, &ps);
    assert_eq!(
        store
            .insert_kb_document(&d, &ps, Some(2), Some(25))
            .await
            .unwrap(),
        KbInsert::Inserted
    );
    assert_eq!(store.kb_usage(&test).await.unwrap().documents, 1);
    // Many passages go in bounded statements, in order.
    let many: Vec<NewPassage> = (0..450)
        .map(|i| passage(&format!("passage number {i}"), Some(vec![i as f32])))
        .collect();
    let d = doc(&t.workspace, true, None, &many);
    assert_eq!(
        store
            .insert_kb_document(&d, &many, None, None)
            .await
            .unwrap(),
        KbInsert::Inserted
    );
    let texts = store.kb_document_passages(&t, &d.id).await.unwrap();
    assert_eq!(texts.len(), 450);
    assert_eq!(texts[449], "passage number 449");
    let found = store
        .search_kb(&t, None, &terms(&["449"]), 5)
        .await
        .unwrap();
    assert_eq!(found[0].position, 449);
    assert_eq!(found[0].embedding, Some(vec![449.0]));
});

both!(search_terms_are_never_syntax, |db: TestDb| async move {
    let store = db.store.clone();
    let t = workspace(&store, "acme").await;
    let ps = vec![passage("Refund policy: return within thirty days.", None)];
    let d = doc(&t.workspace, true, None, &ps);
    store.insert_kb_document(&d, &ps, None, None).await.unwrap();
    for bad in [
        "\"",
        "refund\"",
        "*",
        "refund*",
        "NEAR(refund",
        "text:refund",
        "-refund",
        "a&b",
        "a|b",
        "!refund",
        "refund:*",
        "(",
        ")",
        "'",
        "\\",
        "",
        " ",
        "refund policy",
    ] {
        let found = store.search_kb(&t, None, &terms(&[bad]), 10).await;
        assert!(found.is_ok(), "{bad:?}: {found:?}");
        assert!(
            found.unwrap().is_empty(),
            "{bad:?} is not a plain term, so it is not searched"
        );
    }
    // Operator words are plain words.
    for word in ["near", "and", "or", "not", "NEAR", "OR"] {
        let found = store
            .search_kb(&t, None, &terms(&[word, "refund"]), 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{word}");
    }
    assert!(store.search_kb(&t, None, &[], 10).await.unwrap().is_empty());
    assert!(
        store
            .search_kb(&t, None, &terms(&["refund"]), 0)
            .await
            .unwrap()
            .is_empty()
    );
});
