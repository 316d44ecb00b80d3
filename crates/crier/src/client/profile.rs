//! Saved logins: `credentials.toml` in the user's config dir, one table per profile
//! (`[default]` unless `--profile` names another), each with the server's `url`, the `key` that
//! `crier login` got, its `key_id` (for `logout`) and its `workspace_id`.
//!
//! Where: `$CRIER_CONFIG_DIR/credentials.toml`, else `$XDG_CONFIG_HOME/crier/`, else
//! `~/.config/crier/`. A dir it makes is `0700`; the file is written `0600`, atomically (a
//! temporary file renamed over it), so a crash never leaves half a file and no other user can
//! read a key. A file others can read is refused until its mode is fixed.
//!
//! Precedence: `CRIER_API_KEY` / `CRIER_URL` (or `--url`) over the profile, over the default
//! server `http://127.0.0.1:8080`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
pub const DEFAULT_PROFILE: &str = "default";
const FILE: &str = "credentials.toml";

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    pub key: String,
    pub key_id: String,
    pub workspace_id: String,
}

/// Never the key.
impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("url", &self.url)
            .field("key", &"[redacted]")
            .field("key_id", &self.key_id)
            .field("workspace_id", &self.workspace_id)
            .finish()
    }
}

/// Every saved profile, by name.
pub type Profiles = BTreeMap<String, Profile>;

/// The credentials file, from the environment.
pub fn path() -> Result<PathBuf, String> {
    let dir = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = dir("CRIER_CONFIG_DIR") {
        return Ok(d.join(FILE));
    }
    if let Some(d) = dir("XDG_CONFIG_HOME") {
        return Ok(d.join("crier").join(FILE));
    }
    match dir("HOME") {
        Some(home) => Ok(home.join(".config").join("crier").join(FILE)),
        None => {
            Err("cannot tell where to keep credentials: set CRIER_CONFIG_DIR (or HOME)".to_owned())
        }
    }
}

/// Every profile in the file at `path` (none when there is no file).
pub fn read(path: &Path) -> Result<Profiles, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Profiles::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} can be read by other users (mode {:o}); it holds API keys. Fix it with \
                 `chmod 600 {}` (or log in again elsewhere).",
                path.display(),
                mode & 0o777,
                path.display()
            ));
        }
    }
    toml::from_str(&text).map_err(|e| format!("{}: not a credentials file: {e}", path.display()))
}

/// Writes `profiles` to `path`: the dir `0700`, the file `0600`, replaced atomically.
pub fn write(path: &Path, profiles: &Profiles) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("{}: no parent directory", path.display()))?;
    let fail = |e: std::io::Error| format!("{}: {e}", dir.display());
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(fail)?;
    let text = toml::to_string(profiles).map_err(|e| e.to_string())?;
    let tmp = dir.join(format!(".{FILE}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

pub fn name(profile: Option<&str>) -> &str {
    profile.unwrap_or(DEFAULT_PROFILE)
}

/// The saved profile `profile` (or `default`), if any.
pub fn load(profile: Option<&str>) -> Result<Option<Profile>, String> {
    Ok(read(&path()?)?.remove(name(profile)))
}

/// Saves `p` as `profile` (or `default`), keeping the others.
pub fn save(profile: Option<&str>, p: Profile) -> Result<PathBuf, String> {
    let path = path()?;
    let mut all = read(&path)?;
    all.insert(name(profile).to_owned(), p);
    write(&path, &all)?;
    Ok(path)
}

/// Forgets `profile` (or `default`); whether it was there.
pub fn remove(profile: Option<&str>) -> Result<bool, String> {
    let path = path()?;
    let mut all = read(&path)?;
    let had = all.remove(name(profile)).is_some();
    if had {
        write(&path, &all)?;
    }
    Ok(had)
}

/// The server and key a client command uses: `CRIER_URL` (or `url_flag`, which clap fills from
/// it) over the profile's `url` over [`DEFAULT_URL`]; `CRIER_API_KEY` over the profile's key.
/// The key of a profile saved for another server is not sent to a server named by flag or
/// environment. Shared with `crier mcp`, which runs on the same saved login.
pub fn credentials(
    profile: Option<&str>,
    url_flag: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let saved = load(profile)?;
    let url = url_flag
        .map(str::to_owned)
        .or_else(|| saved.as_ref().map(|p| p.url.clone()))
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    let key = match std::env::var("CRIER_API_KEY") {
        Ok(k) if !k.is_empty() => Some(k),
        _ => saved.filter(|p| same_server(&p.url, &url)).map(|p| p.key),
    };
    Ok((url, key))
}

fn same_server(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(FILE);
        let mut all = Profiles::new();
        let p = Profile {
            url: "http://127.0.0.1:9".into(),
            key: "sk_live_x".into(),
            key_id: "key_1".into(),
            workspace_id: "ws_1".into(),
        };
        all.insert("default".into(), p.clone());
        all.insert(
            "staging".into(),
            Profile {
                key: "sk_test_y".into(),
                ..p.clone()
            },
        );
        write(&path, &all).unwrap();
        assert_eq!(read(&path).unwrap(), all);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = read(&path).unwrap_err();
            assert!(e.contains("chmod 600"), "{e}");
        }
        assert!(read(&dir.path().join("none.toml")).unwrap().is_empty());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let p = Profile {
            key: "sk_live_secret".into(),
            ..Profile::default()
        };
        assert!(!format!("{p:?}").contains("secret"));
    }

    #[test]
    fn a_saved_key_goes_only_to_its_own_server() {
        assert!(same_server("http://a:1/", "http://a:1"));
        assert!(!same_server("http://a:1", "http://b:1"));
    }
}
