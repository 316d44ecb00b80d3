//! Whose data a call acts on: a workspace, and one of its two worlds (live or test). Reads and
//! writes on behalf of a key take a `Tenant`, so an object of the other mode does not exist for
//! the caller by construction, not by a filter applied afterwards.

use crate::ids::WorkspaceId;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tenant {
    pub workspace: WorkspaceId,
    pub livemode: bool,
}
