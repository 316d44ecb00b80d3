//! Scopes: a closed set with stable wire strings, held by a key as a bit set.
//!
//! Aliases are accepted on input and stored as what they expand to, so a stored key never
//! holds an alias and the access decision is one AND of two words.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! scopes {
    ($($variant:ident => $wire:literal),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Scope { $($variant),* }

        impl Scope {
            pub const ALL: &'static [Scope] = &[$(Scope::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(Scope::$variant => $wire),* }
            }

            fn from_wire(s: &str) -> Option<Scope> {
                match s { $($wire => Some(Scope::$variant),)* _ => None }
            }
        }
    };
}

scopes! {
    PostsRead => "posts:read",
    PostsWrite => "posts:write",
    PostsDelete => "posts:delete",
    PostsPublish => "posts:publish",
    PostsApprove => "posts:approve",
    MediaRead => "media:read",
    MediaWrite => "media:write",
    AccountsRead => "accounts:read",
    AccountsWrite => "accounts:write",
    AnalyticsRead => "analytics:read",
    QueueRead => "queue:read",
    QueueWrite => "queue:write",
    FeedsRead => "feeds:read",
    FeedsWrite => "feeds:write",
    AiGenerate => "ai:generate",
    WebhooksRead => "webhooks:read",
    WebhooksWrite => "webhooks:write",
    BrandsRead => "brands:read",
    BrandsWrite => "brands:write",
    KbRead => "kb:read",
    KbWrite => "kb:write",
    AgentsRead => "agents:read",
    AgentsWrite => "agents:write",
    CarouselsRead => "carousels:read",
    CarouselsWrite => "carousels:write",
    ClipsRead => "clips:read",
    ClipsWrite => "clips:write",
    KeysRead => "keys:read",
    KeysWrite => "keys:write",
    WorkspaceWrite => "workspace:write",
}

impl Scope {
    /// Scopes whose actions need a paid plan (`402 payment_required` otherwise).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            Scope::PostsPublish | Scope::MediaWrite | Scope::AiGenerate
        )
    }

    /// What the scope lets a key do, for error messages ("This key cannot {action}").
    pub fn action(self) -> &'static str {
        match self {
            Scope::PostsRead => "read posts",
            Scope::PostsWrite => "create or edit posts",
            Scope::PostsDelete => "delete posts",
            Scope::PostsPublish => "publish posts",
            Scope::PostsApprove => "approve posts",
            Scope::MediaRead => "read media",
            Scope::MediaWrite => "upload media",
            Scope::AccountsRead => "read connected accounts",
            Scope::AccountsWrite => "connect or disconnect accounts",
            Scope::AnalyticsRead => "read analytics",
            Scope::QueueRead => "read the queue",
            Scope::QueueWrite => "change the queue",
            Scope::FeedsRead => "read feeds",
            Scope::FeedsWrite => "change feeds",
            Scope::AiGenerate => "use AI generation",
            Scope::WebhooksRead => "read webhooks",
            Scope::WebhooksWrite => "change webhooks",
            Scope::BrandsRead => "read brands",
            Scope::BrandsWrite => "change brands",
            Scope::KbRead => "read the knowledge base",
            Scope::KbWrite => "change the knowledge base",
            Scope::AgentsRead => "read agents and their runs",
            Scope::AgentsWrite => "change or run agents",
            Scope::CarouselsRead => "read carousels",
            Scope::CarouselsWrite => "create or change carousels",
            Scope::ClipsRead => "read clip jobs",
            Scope::ClipsWrite => "cut clips from videos",
            Scope::KeysRead => "read API keys",
            Scope::KeysWrite => "manage API keys",
            Scope::WorkspaceWrite => "change workspace settings",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Expands one scope or alias from the contract's table. `None` for anything unknown.
pub fn expand(s: &str) -> Option<ScopeSet> {
    let alias: &[Scope] = match s {
        "media:upload" => &[Scope::MediaWrite],
        "connections:read" => &[Scope::AccountsRead],
        "connections:write" => &[Scope::AccountsWrite],
        "insights:read" => &[Scope::AnalyticsRead, Scope::AccountsRead],
        "schedule:read" => &[Scope::QueueRead],
        "schedule:write" => &[Scope::QueueWrite],
        other => return Scope::from_wire(other).map(ScopeSet::of),
    };
    Some(alias.iter().copied().collect())
}

/// A set of scopes as a bit set: membership and subset tests are single instructions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScopeSet(u32);

impl ScopeSet {
    pub const EMPTY: ScopeSet = ScopeSet(0);

    pub fn all() -> Self {
        Scope::ALL.iter().copied().collect()
    }

    pub fn of(scope: Scope) -> Self {
        Self(scope.bit())
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: ScopeSet) -> Self {
        Self(self.0 | other.0)
    }

    pub fn difference(self, other: ScopeSet) -> Self {
        Self(self.0 & !other.0)
    }

    pub fn insert(&mut self, scope: Scope) {
        self.0 |= scope.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    /// Parses a list of scopes and aliases; the error names the first unknown entry.
    pub fn parse_list<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = ScopeSet::EMPTY;
        for item in items {
            match expand(item.trim()) {
                Some(s) => set = set.union(s),
                None => return Err(item.to_owned()),
            }
        }
        Ok(set)
    }

    /// The stored form: wire strings joined by spaces, in a stable order.
    pub fn to_storage(self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Reads the stored form back; unknown words (from a newer version) are dropped, never
    /// widened into something else.
    pub fn from_storage(s: &str) -> Self {
        s.split_whitespace().filter_map(Scope::from_wire).collect()
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<T: IntoIterator<Item = Scope>>(iter: T) -> Self {
        let mut set = ScopeSet::EMPTY;
        for s in iter {
            set.insert(s);
        }
        set
    }
}

impl fmt::Debug for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Scope::as_str))
            .finish()
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(Scope::as_str))
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        ScopeSet::parse_list(items.iter().map(String::as_str))
            .map_err(|bad| serde::de::Error::custom(format!("unknown scope `{bad}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scope_round_trips_through_its_wire_string() {
        for s in Scope::ALL {
            assert_eq!(expand(s.as_str()), Some(ScopeSet::of(*s)));
        }
        let all = ScopeSet::all();
        assert_eq!(ScopeSet::from_storage(&all.to_storage()), all);
    }

    #[test]
    fn aliases_expand_as_the_contract_says() {
        let cases: &[(&str, &[Scope])] = &[
            ("media:upload", &[Scope::MediaWrite]),
            ("connections:read", &[Scope::AccountsRead]),
            ("connections:write", &[Scope::AccountsWrite]),
            (
                "insights:read",
                &[Scope::AnalyticsRead, Scope::AccountsRead],
            ),
            ("schedule:read", &[Scope::QueueRead]),
            ("schedule:write", &[Scope::QueueWrite]),
        ];
        for (alias, want) in cases {
            assert_eq!(
                expand(alias),
                Some(want.iter().copied().collect()),
                "{alias}"
            );
        }
        assert_eq!(expand("posts:everything"), None);
        assert_eq!(expand("POSTS:READ"), None);
    }

    #[test]
    fn subset_decisions() {
        let read = ScopeSet::of(Scope::PostsRead);
        let rw = read.union(ScopeSet::of(Scope::PostsWrite));
        assert!(read.is_subset_of(rw));
        assert!(!rw.is_subset_of(read));
        assert!(ScopeSet::EMPTY.is_subset_of(read));
        assert_eq!(rw.difference(read), ScopeSet::of(Scope::PostsWrite));
    }

    #[test]
    fn parse_list_names_the_unknown_entry() {
        assert_eq!(
            ScopeSet::parse_list(["posts:read", "nope"]),
            Err("nope".to_owned())
        );
        assert_eq!(
            serde_json::from_str::<ScopeSet>(r#"["insights:read"]"#).unwrap(),
            ScopeSet::of(Scope::AnalyticsRead).union(ScopeSet::of(Scope::AccountsRead))
        );
    }
}
