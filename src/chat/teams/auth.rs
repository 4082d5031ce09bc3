//! Who may call `/api/messages`: the Bot Framework's signed JWT, checked the
//! way botbuilder's `JwtTokenValidation` checks it (DESIGN.md "Inbound").
//!
//! RS256 with a key from the JWKS the OpenID metadata names; `iss`
//! `https://api.botframework.com`; `aud` the app id; `exp`/`nbf` within 5 min
//! of skew; the key endorsed for the activity's channel (`msteams`); the
//! `serviceurl` claim equal to the activity's `serviceUrl`. Keys are cached:
//! refreshed daily, and on an unknown `kid` at most once per 5 minutes, so a
//! flood of forged tokens cannot turn into a flood of key fetches.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

pub const ISSUER: &str = "https://api.botframework.com";
const SKEW: Duration = Duration::from_secs(300);
const REFRESH_EVERY: Duration = Duration::from_secs(24 * 3600);
const UNKNOWN_KID_REFRESH: Duration = Duration::from_secs(300);
const FAILED_FETCH_PAUSE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("signed by an unknown key")]
    UnknownKey,
    #[error("the signing key is not endorsed for channel `{0}`")]
    NotEndorsed(String),
    #[error("an activity of channel `{0}`; only `msteams` is served")]
    OtherChannel(String),
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("the token's serviceurl does not match the activity's serviceUrl")]
    ServiceUrl,
    #[error("cannot read the Bot Framework signing keys: {0}")]
    Keys(String),
}

#[derive(Debug, Deserialize)]
struct Metadata {
    jwks_uri: String,
}

#[derive(Debug, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Debug, Deserialize)]
struct Jwk {
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    kty: String,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    endorsements: Vec<String>,
}

struct Key {
    decoding: DecodingKey,
    endorsements: Vec<String>,
}

struct Keys {
    by_kid: HashMap<String, Key>,
    fetched: Option<Instant>,
    /// The last fetch caused by an unknown kid.
    last_forced: Option<Instant>,
    /// The last fetch that failed.
    failed: Option<Instant>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    serviceurl: Option<String>,
}

pub struct Verifier {
    app_id: String,
    metadata_url: String,
    http: reqwest::Client,
    keys: tokio::sync::Mutex<Keys>,
}

impl Verifier {
    pub fn new(app_id: &str, metadata_url: &str, http: reqwest::Client) -> Self {
        Verifier {
            app_id: app_id.to_string(),
            metadata_url: metadata_url.to_string(),
            http,
            keys: tokio::sync::Mutex::new(Keys {
                by_kid: HashMap::new(),
                fetched: None,
                last_forced: None,
                failed: None,
            }),
        }
    }

    /// Checks `Authorization` for an activity from `channel_id` naming `service_url`.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        channel_id: &str,
        service_url: &str,
    ) -> Result<(), AuthError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::RS256 {
            return Err(AuthError::Invalid(format!("algorithm {:?}", header.alg)));
        }
        let kid = header
            .kid
            .ok_or_else(|| AuthError::Malformed("no kid".into()))?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[&self.app_id]);
        validation.leeway = SKEW.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);

        let claims = {
            let mut keys = self.keys.lock().await;
            self.refresh_if_due(&mut keys, &kid).await?;
            let key = keys.by_kid.get(&kid).ok_or(AuthError::UnknownKey)?;
            if !key.endorsements.iter().any(|e| e == channel_id) {
                return Err(AuthError::NotEndorsed(channel_id.to_string()));
            }
            jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
                .map_err(|e| AuthError::Invalid(e.to_string()))?
                .claims
        };
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        match claims.serviceurl {
            Some(claimed) if same(&claimed, service_url) => Ok(()),
            _ => Err(AuthError::ServiceUrl),
        }
    }

    async fn refresh_if_due(&self, keys: &mut Keys, kid: &str) -> Result<(), AuthError> {
        let stale = keys.fetched.is_none_or(|t| t.elapsed() >= REFRESH_EVERY);
        let unknown = !keys.by_kid.contains_key(kid)
            && keys
                .last_forced
                .is_none_or(|t| t.elapsed() >= UNKNOWN_KID_REFRESH);
        if !stale && !unknown {
            return Ok(());
        }
        if unknown && !stale {
            keys.last_forced = Some(Instant::now());
        }
        // After a failed fetch, wait before the next: a flood of requests
        // must not become a flood of fetches (or of 10 s waits on the lock).
        if keys
            .failed
            .is_some_and(|t| t.elapsed() < FAILED_FETCH_PAUSE)
        {
            return if keys.by_kid.is_empty() {
                Err(AuthError::Keys(
                    "the Bot Framework keys could not be read a moment ago; retrying shortly"
                        .into(),
                ))
            } else {
                Ok(())
            };
        }
        match self.fetch().await {
            Ok(by_kid) => {
                keys.by_kid = by_kid;
                keys.fetched = Some(Instant::now());
                keys.failed = None;
                Ok(())
            }
            Err(e) => {
                keys.failed = Some(Instant::now());
                if keys.by_kid.is_empty() {
                    // Without any keys, nobody gets in.
                    return Err(e);
                }
                tracing::warn!(error = %e, "cannot refresh the Bot Framework keys; keeping the old ones");
                Ok(())
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, AuthError> {
        let get = |url: String| async move {
            self.http
                .get(&url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .map_err(|e| AuthError::Keys(format!("{url}: {e}")))
        };
        let metadata: Metadata = get(self.metadata_url.clone())
            .await?
            .json()
            .await
            .map_err(|e| AuthError::Keys(format!("OpenID metadata: {e}")))?;
        let jwks: Jwks = get(metadata.jwks_uri)
            .await?
            .json()
            .await
            .map_err(|e| AuthError::Keys(format!("JWKS: {e}")))?;
        let mut by_kid = HashMap::new();
        for jwk in jwks.keys {
            let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
                continue;
            };
            if jwk.kty != "RSA" {
                continue;
            }
            match DecodingKey::from_rsa_components(&n, &e) {
                Ok(decoding) => {
                    by_kid.insert(
                        kid,
                        Key {
                            decoding,
                            endorsements: jwk.endorsements,
                        },
                    );
                }
                Err(err) => tracing::warn!(%kid, error = %err, "unusable key in the JWKS"),
            }
        }
        tracing::info!(keys = by_kid.len(), "Bot Framework signing keys loaded");
        Ok(by_kid)
    }
}
