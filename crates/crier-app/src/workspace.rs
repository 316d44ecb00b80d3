//! The workspace's settings, for every caller. They are live data: the time zone and the
//! approval rule apply to both modes, so only a live caller may change them (test mode is a
//! parallel world that must not change the live one).

use crier_core::ErrorCode;
use crier_store::WorkspaceChanges;

use crate::{App, AppError, AppResult, Caller};

/// The longest IANA time zone name accepted.
pub const MAX_TIMEZONE: usize = 64;

/// A change of settings; `None` keeps one.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub timezone: Option<String>,
    pub require_approval: Option<bool>,
}

/// The workspace rules over one [`App`].
pub struct Workspaces<'a> {
    pub(crate) app: &'a App,
}

impl Workspaces<'_> {
    /// Changes the caller's workspace's settings.
    pub async fn update(&self, c: &Caller, s: Settings) -> AppResult<()> {
        if !c.livemode() {
            return Err(AppError::new(
                ErrorCode::ForbiddenScope,
                "Test-mode keys cannot change live workspace settings; use a live key.",
            ));
        }
        // The settings apply to every account, beyond what a limited key reaches.
        c.require_unrestricted("change the workspace's settings")?;
        if let Some(tz) = &s.timezone
            && (tz.len() > MAX_TIMEZONE || jiff::tz::TimeZone::get(tz).is_err())
        {
            return Err(AppError::invalid(
                "timezone",
                format!("`{tz}` is not an IANA time zone such as `Europe/Berlin`."),
            ));
        }
        let changes = WorkspaceChanges {
            timezone: s.timezone,
            require_approval: s.require_approval,
            plan: None,
        };
        self.app
            .store()
            .update_workspace(c.workspace(), &changes, self.app.clock().now_ms())
            .await?;
        Ok(())
    }
}
