//! The web console's static files, compiled into the binary: `/` (the page) and `/console/{file}` (its scripts and style), with a strict Content-Security-Policy.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The policy of every console answer: scripts, styles and connections from this origin only,
/// nothing inline, no framing, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One file: its name under `/console/`, media type and text.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    text: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console has; `index.html` is also served at `/`.
const ASSETS: [Asset; 11] = [
    Asset { name: "index.html", media_type: "text/html; charset=utf-8", text: include_str!("../../console/index.html") },
    Asset { name: "console.css", media_type: "text/css; charset=utf-8", text: include_str!("../../console/console.css") },
    Asset { name: "app.js", media_type: JS, text: include_str!("../../console/app.js") },
    Asset { name: "api.js", media_type: JS, text: include_str!("../../console/api.js") },
    Asset { name: "charts.js", media_type: JS, text: include_str!("../../console/charts.js") },
    Asset { name: "overview.js", media_type: JS, text: include_str!("../../console/overview.js") },
    Asset { name: "search.js", media_type: JS, text: include_str!("../../console/search.js") },
    Asset { name: "alerts.js", media_type: JS, text: include_str!("../../console/alerts.js") },
    Asset { name: "rules.js", media_type: JS, text: include_str!("../../console/rules.js") },
    Asset { name: "backtest.js", media_type: JS, text: include_str!("../../console/backtest.js") },
    Asset { name: "jobs.js", media_type: JS, text: include_str!("../../console/jobs.js") },
];

/// The entity tag of each asset (a hash of its text), computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = Sha256::digest(asset.text.as_bytes());
                let hex: String = digest[..8].iter().map(|byte| format!("{byte:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// `GET /`: the console page.
pub async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /console/{file}`: a script, the style sheet or the page; 404 for any other name.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|asset| asset.name == name) else {
        let mut response = (StatusCode::NOT_FOUND, "no such console file\n").into_response();
        secure(response.headers_mut());
        return response;
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = request.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()).is_some_and(|tags| {
        tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*")
    });
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.text.into_response() };
    let headers = response.headers_mut();
    secure(headers);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    // Revalidated on every load (an upgrade changes the files under the same names); the
    // entity tag makes that a 304 without a body.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// The security headers of every console answer.
fn secure(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_asset_has_inline_script_style_or_handler() {
        for asset in &ASSETS {
            let text = asset.text.to_ascii_lowercase();
            if asset.name.ends_with(".html") {
                for script in text.split("<script").skip(1) {
                    let tag = script.split('>').next().unwrap();
                    assert!(tag.contains("src="), "{}: inline <script{tag}>", asset.name);
                    let body = script.split("</script>").next().unwrap();
                    assert!(body.ends_with('>') && body.matches('>').count() == 1, "{}: script with a body", asset.name);
                }
                assert!(!text.contains("<style"), "{}: inline style element", asset.name);
                assert!(!text.contains(" style="), "{}: style attribute", asset.name);
                let handler = text.split(" on").skip(1).find(|rest| {
                    let word = rest.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default();
                    !word.is_empty() && rest[word.len()..].trim_start().starts_with('=')
                });
                assert!(handler.is_none(), "{}: inline event handler on{}", asset.name, handler.unwrap_or_default());
            }
            assert!(!text.contains("javascript:"), "{}: javascript: URL", asset.name);
            assert!(!text.contains("innerhtml"), "{}: innerHTML (text goes through textContent)", asset.name);
            assert!(!text.contains("eval("), "{}: eval", asset.name);
            // The SVG namespace is a name, not an address the page loads.
            let text = text.replace("http://www.w3.org/2000/svg", "");
            assert!(!text.contains("http://") && !text.contains("https://"), "{}: an outside address", asset.name);
        }
    }

    #[test]
    fn every_asset_is_served_with_its_type_policy_and_tag() {
        for asset in &ASSETS {
            let response = serve(asset.name, &HeaderMap::new());
            assert_eq!(response.status(), StatusCode::OK);
            let headers = response.headers();
            assert_eq!(headers[header::CONTENT_TYPE], asset.media_type);
            assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            let mut again = HeaderMap::new();
            again.insert(header::IF_NONE_MATCH, headers[header::ETAG].clone());
            assert_eq!(serve(asset.name, &again).status(), StatusCode::NOT_MODIFIED, "{}", asset.name);
        }
        assert_eq!(serve("../Cargo.toml", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
