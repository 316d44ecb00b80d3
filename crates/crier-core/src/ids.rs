//! Typed, prefixed, opaque ids (`ws_…`, `key_…`). The body is a UUIDv7 in fixed-width base62,
//! so ids created later sort later, which keeps "newest first" lists stable.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::base62;

/// Characters after the prefix's underscore.
pub const BODY_LEN: usize = 22;

/// A fresh id body with the given prefix (without the underscore), e.g. `new_id("req")`.
pub fn new_id(prefix: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + 1 + BODY_LEN);
    s.push_str(prefix);
    s.push('_');
    base62::encode_fixed(uuid::Uuid::now_v7().as_u128(), BODY_LEN, &mut s);
    s
}

/// Whether `s` has the shape of an id with `prefix`: cheap, and enough to reject junk before
/// it reaches storage (ids are opaque to clients, so anything else simply does not exist).
pub fn has_shape(s: &str, prefix: &str) -> bool {
    s.len() == prefix.len() + 1 + BODY_LEN
        && s.starts_with(prefix)
        && s.as_bytes()[prefix.len()] == b'_'
        && s.as_bytes()[prefix.len() + 1..]
            .iter()
            .all(|b| base62::digit(*b).is_some())
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> Self {
                Self(new_id($prefix))
            }

            /// Accepts only a well-formed id of this type.
            pub fn parse(s: &str) -> Option<Self> {
                has_shape(s, $prefix).then(|| Self(s.to_owned()))
            }

            /// Wraps a value read back from storage, which only ever holds ids we made.
            pub fn from_trusted(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

typed_id!(
    /// A workspace: the tenant every other object belongs to.
    WorkspaceId, "ws"
);
typed_id!(
    /// An API key's public id (never the secret).
    KeyId, "key"
);
typed_id!(
    /// One HTTP request, echoed in `X-Request-Id`, the error envelope and the logs.
    RequestId, "req"
);
typed_id!(
    /// One entry of the audit log.
    AuditId, "aud"
);
typed_id!(
    /// A connected social account.
    AccountId, "acct"
);
typed_id!(
    /// A post: one text (or thread) for one or more accounts.
    PostId, "post"
);
typed_id!(
    /// A job in the durable queue.
    JobId, "job"
);
typed_id!(
    /// One call to a network to publish one part of a post.
    AttemptId, "att"
);
typed_id!(
    /// Something that happened in a workspace, delivered to webhook endpoints.
    EventId, "evt"
);
typed_id!(
    /// A webhook endpoint.
    WebhookId, "whep"
);
typed_id!(
    /// One event on its way to one endpoint (retries keep it).
    DeliveryId, "dlv"
);
typed_id!(
    /// An RSS, Atom or JSON Feed automation: a feed URL polled into posts.
    FeedId, "feed"
);
typed_id!(
    /// A media object: an uploaded image or video.
    MediaId, "med"
);
typed_id!(
    /// A brand: a named group of accounts with its own voice and knowledge.
    BrandId, "brd"
);
typed_id!(
    /// A knowledge-base document (its passages are found through it).
    DocumentId, "kbd"
);
typed_id!(
    /// A person who signs in to the dashboard.
    UserId, "usr"
);
typed_id!(
    /// One login of a user (its token, `sess_…`, is a separate secret).
    SessionId, "ses"
);
typed_id!(
    /// An invitation link into a workspace.
    InvitationId, "inv"
);
typed_id!(
    /// A device login of the CLI, waiting for a user's approval.
    DeviceLoginId, "dev"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_their_prefix_and_sort_by_creation() {
        let a = KeyId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = KeyId::generate();
        assert!(a.as_str().starts_with("key_"));
        assert!(b > a);
        assert_eq!(KeyId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(WorkspaceId::parse(a.as_str()), None);
        assert_eq!(KeyId::parse("key_short"), None);
        assert_eq!(KeyId::parse("key_!!!!!!!!!!!!!!!!!!!!!!"), None);
    }
}
typed_id!(
    /// An agent: instructions, sources, a schedule and an output mode that make posts.
    AgentId, "agt"
);
typed_id!(
    /// One run of an agent (scheduled or asked for), with what it used and made.
    AgentRunId, "arun"
);
typed_id!(
    /// A carousel: slides generated from a text, a prompt or a URL, refined, rendered.
    CarouselId, "car"
);
typed_id!(
    /// A clip job: scenes found in a video and clips cut from it.
    ClipId, "clp"
);
