//! `rerun-bot audit`: reads the running bot's audit trail over `GET /audit`.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;

pub use crate::store::AuditEntry as AuditLine;

/// Fetches audit lines; errors are one sentence for the person at the terminal.
pub async fn fetch(
    base_url: &str,
    token: &str,
    since: Option<&str>,
    cronjob: Option<&str>,
) -> Result<Vec<AuditLine>, String> {
    let mut url =
        url::Url::parse(base_url).map_err(|e| format!("invalid --url `{base_url}`: {e}"))?;
    url.set_path("/audit");
    {
        let mut q = url.query_pairs_mut();
        if let Some(s) = since {
            q.append_pair("since", s);
        }
        if let Some(c) = cronjob {
            q.append_pair("cronjob", c);
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("no TLS roots: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    let req = hyper::Request::get(url.as_str())
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let res = client
        .request(req)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    match status.as_u16() {
        200 => {}
        401 => return Err("the bot refused the token (check RERUN_BOT_AUDIT_TOKEN)".into()),
        404 => {
            return Err(
                "the bot has no /audit endpoint (RERUN_BOT_AUDIT_TOKEN is not set on the bot)"
                    .into(),
            );
        }
        code => return Err(format!("the bot answered {code}: {}", text.trim())),
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("unexpected audit line ({e}): {l}")))
        .collect()
}

/// A fixed-width table, newest last.
pub fn table(lines: &[AuditLine]) -> String {
    let mut out = format!(
        "{:<20}  {:<8}  {:<12}  {:<22}  {:<32}  {}\n",
        "AT (UTC)", "PLATFORM", "ACTOR", "ACTION", "SUBJECT", "DETAIL"
    );
    for l in lines {
        let detail = match &l.event.detail {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        out.push_str(&format!(
            "{:<20}  {:<8}  {:<12}  {:<22}  {:<32}  {}\n",
            l.event.at.format("%Y-%m-%d %H:%M:%S"),
            l.event.platform.map(|p| p.name()).unwrap_or("-"),
            l.event.actor,
            l.event.action,
            l.event.subject,
            detail
        ));
    }
    out
}
