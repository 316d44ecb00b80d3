//! [`World`]: the part every worker suite builds first. A workspace on a fresh database with a
//! manual clock at [`T0`], and the accounts and posts the suites read back. A suite adds what
//! it drives (a publisher, a deliverer, a feed poller, a local server) by holding a `World`
//! and dereferencing to it.

use crier_core::clock::from_ms;
use crier_core::ids::{PostId, WorkspaceId};
use crier_core::{Clock, ManualClock};
use crier_store::{Account, Post, Store};

use crate::TestDb;

/// 2027-01-15T08:00:00Z, a Friday: where every [`World`]'s clock starts.
pub const T0: i64 = 1_800_000_000_000;

/// The workspace `acme` (plan `free`) over a fresh database, at [`T0`].
pub struct World {
    pub store: Store,
    pub clock: ManualClock,
    pub ws: WorkspaceId,
}

impl World {
    pub async fn new(db: &TestDb) -> Self {
        let store = db.store.clone();
        let clock = ManualClock::new(from_ms(T0));
        let ws = store
            .create_workspace("acme", "free", T0)
            .await
            .expect("create workspace")
            .id;
        Self { store, clock, ws }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn set(&self, at: i64) {
        self.clock.set(from_ms(at));
    }

    /// A connected sandbox account of the workspace, made at [`T0`].
    pub async fn account(&self, handle: &str, livemode: bool) -> Account {
        let mut a = Account::new(&self.ws, livemode, "sandbox", handle, "", T0);
        a.external_id = a.id.to_string();
        self.store
            .connect_account(&a)
            .await
            .expect("insert account")
    }

    /// A post of the workspace, read back from storage.
    pub async fn post(&self, id: &PostId) -> Post {
        self.store
            .get_post(&self.ws, id)
            .await
            .expect("get post")
            .expect("the post exists")
    }
}
