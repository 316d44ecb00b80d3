mod common;

use common::{TestApp, both};

async fn a_key_reads_its_workspace() {
    let app = TestApp::new().await;
    let key = app.key_with(&[crier_core::Scope::PostsRead]).await;
    let r = app.get("/v1/workspace").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], app.workspace.id.as_str());
}

both!(
    tests: a_key_reads_its_workspace,
);
