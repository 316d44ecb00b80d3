//! A connected social account's status. An account is `connected` until it is disconnected
//! (by the workspace) or its grant expires (by the network); only a connected account is
//! published to and counts against the plan's `connected_accounts`.

/// Stored and shown as its [`AccountStatus::as_str`] text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountStatus {
    Connected,
    Disconnected,
    Expired,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Connected, Self::Disconnected, Self::Expired]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_round_trips() {
        for s in ["connected", "disconnected", "expired"] {
            assert_eq!(AccountStatus::parse(s).map(AccountStatus::as_str), Some(s));
        }
        assert_eq!(AccountStatus::parse("Connected"), None);
    }
}
