//! One server's access token and when to replace it: a token is used until it comes close to
//! its expiry, where "close" is the time until the next probe could use it, so a daemon renews
//! it before it expires rather than after a probe fails.

use std::time::{Duration, SystemTime};

/// A token the prober obtained.
#[derive(Clone, PartialEq, Eq)]
pub struct CachedToken {
    /// The access token.
    pub access: String,
    /// The refresh token, when the authorization server issued one.
    pub refresh: Option<String>,
    /// The scopes granted (or asked for, when the answer stated none), space separated.
    pub scope: Option<String>,
    /// When it was obtained.
    pub obtained_at: SystemTime,
    /// When it expires (`expires_in`); `None` when the server did not say.
    pub expires_at: Option<SystemTime>,
    /// Bound to the server's DPoP key (`token_type` `DPoP`, src/auth/dpop.rs): presented as
    /// `Authorization: DPoP` with a proof; else a bearer token.
    pub dpop_bound: bool,
}

/// Token values never reach a log line.
impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("refresh", &self.refresh.is_some())
            .field("scope", &self.scope)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What to do with the cached token before a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Use it.
    Fresh,
    /// Renew it first (it expires within `ahead` or has expired).
    Renew,
}

impl CachedToken {
    /// Whether the token can be used at `now` when it must last `ahead` longer (the next probe's
    /// interval plus its timeout). A token that states no expiry is used until refused. The
    /// margin is at most half the token's lifetime, so a short-lived token is still used.
    pub fn freshness(&self, now: SystemTime, ahead: Duration) -> Freshness {
        let Some(expires_at) = self.expires_at else {
            return Freshness::Fresh;
        };
        let lifetime = expires_at
            .duration_since(self.obtained_at)
            .unwrap_or(Duration::ZERO);
        let margin = ahead.min(lifetime / 2);
        match expires_at.duration_since(now) {
            Ok(left) if left > margin => Freshness::Fresh,
            _ => Freshness::Renew,
        }
    }

    /// Expiry as Unix seconds, for `mcp_credential_expiry_timestamp_seconds`.
    pub fn expires_unix(&self) -> Option<i64> {
        self.expires_at
            .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(lifetime: Option<u64>) -> CachedToken {
        let obtained_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        CachedToken {
            access: "a".into(),
            refresh: None,
            scope: None,
            obtained_at,
            expires_at: lifetime.map(|s| obtained_at + Duration::from_secs(s)),
            dpop_bound: false,
        }
    }

    #[test]
    fn renewed_when_the_next_probe_would_find_it_expired() {
        let t = token(Some(3600));
        let at = |s: u64| t.obtained_at + Duration::from_secs(s);
        let ahead = Duration::from_secs(60);
        assert_eq!(t.freshness(at(0), ahead), Freshness::Fresh);
        assert_eq!(t.freshness(at(3539), ahead), Freshness::Fresh);
        assert_eq!(t.freshness(at(3540), ahead), Freshness::Renew);
        assert_eq!(t.freshness(at(4000), ahead), Freshness::Renew);
    }

    #[test]
    fn short_lived_tokens_are_used_for_half_their_life() {
        let t = token(Some(30));
        let at = |s: u64| t.obtained_at + Duration::from_secs(s);
        let ahead = Duration::from_secs(300);
        assert_eq!(t.freshness(at(10), ahead), Freshness::Fresh);
        assert_eq!(t.freshness(at(15), ahead), Freshness::Renew);
    }

    #[test]
    fn tokens_without_expiry_are_used_until_refused() {
        let t = token(None);
        assert_eq!(
            t.freshness(SystemTime::now(), Duration::from_secs(3600)),
            Freshness::Fresh
        );
        assert_eq!(t.expires_unix(), None);
        assert_eq!(token(Some(10)).expires_unix(), Some(1_000_010));
    }

    #[test]
    fn debug_never_shows_tokens() {
        let mut t = token(Some(10));
        t.access = "secret-access".into();
        t.refresh = Some("secret-refresh".into());
        let shown = format!("{t:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
