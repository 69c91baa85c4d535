//! JWT verification with real signatures: keys made at test time, a JWKS served over HTTP by a test server.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::config::{JwtConfig, JwtKeyConfig};
use super::jwt::{JwtRefusal, JwtVerifier};

const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "securewatch";

/// A signing key made now, with its public half as a JWK and as PEM.
struct TestKey {
    kid: String,
    algorithm: Algorithm,
    pair: rcgen::KeyPair,
}

impl TestKey {
    fn es256(kid: &str) -> TestKey {
        TestKey { kid: kid.into(), algorithm: Algorithm::ES256, pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap() }
    }

    fn ed25519(kid: &str) -> TestKey {
        TestKey { kid: kid.into(), algorithm: Algorithm::EdDSA, pair: rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap() }
    }

    fn jwk(&self) -> Value {
        let raw = self.pair.public_key_raw();
        match self.algorithm {
            Algorithm::ES256 => json!({
                "kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
            }),
            _ => json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "use": "sig", "alg": "EdDSA", "x": URL_SAFE_NO_PAD.encode(&raw)}),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let private = self.pair.serialize_pem();
        let key = match self.algorithm {
            Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
            _ => EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(subject: &str) -> Value {
    json!({"sub": subject, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "iat": now(), "groups": ["sw-analysts"], "tenants": ["acme"]})
}

/// A JWKS served over HTTP on loopback, replaceable while it runs, counting its fetches.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> JwksServer {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&keys), Arc::clone(&fetches));
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (served, counted) = (Arc::clone(&served), Arc::clone(&counted));
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({ "keys": served.lock().unwrap().clone() }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer { url, keys, fetches, task }
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn config(jwks_url: Option<String>, refetch_secs: u64) -> JwtConfig {
    JwtConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_url,
        jwks_refetch_secs: refetch_secs,
        roles_claim: "groups".into(),
        role_map: BTreeMap::from([("sw-analysts".to_string(), "analyst".to_string())]),
        ..JwtConfig::default()
    }
}

/// `header.payload.signature` with the header replaced by `header` (JSON) and the signature
/// by `signature`.
fn forge(token: &str, header: &Value, payload: Option<&Value>, signature: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = payload.map_or(parts[1].to_string(), |payload| URL_SAFE_NO_PAD.encode(payload.to_string()));
    format!("{}.{payload}.{signature}", URL_SAFE_NO_PAD.encode(header.to_string()))
}

#[tokio::test]
async fn jwks_tokens_are_verified_and_every_forgery_is_refused() {
    let key = TestKey::es256("k1");
    let server = JwksServer::start(vec![key.jwk()]).await;
    let verifier = JwtVerifier::new(&config(Some(server.url.clone()), 3600)).unwrap();
    verifier.prefetch().await;
    assert_eq!(server.fetches(), 1);

    // Valid: accepted, claims mapped to name, roles (through role_map) and tenants.
    let claims_of = verifier.verify(&key.sign(&claims("alice"))).await.unwrap();
    assert_eq!(verifier.identity(&claims_of), ("jwt:alice".to_string(), vec!["analyst".to_string()], vec!["acme".to_string()]));

    let refused = |token: String| {
        let verifier = &verifier;
        async move { verifier.verify(&token).await.expect_err("a bad token was accepted") }
    };
    // Expired and not yet valid, beyond the 30 s leeway; within it they pass.
    let expired = refused(key.sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() - 120}))).await;
    assert!(matches!(&expired, JwtRefusal::Invalid(reason) if reason.contains("Expired")), "{expired:?}");
    verifier.verify(&key.sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() - 10}))).await.unwrap();
    let early = refused(key.sign(&json!({"iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "nbf": now() + 120}))).await;
    assert!(matches!(&early, JwtRefusal::Invalid(reason) if reason.contains("Immature")), "{early:?}");
    // Wrong issuer, wrong audience, no exp.
    let wrong_issuer = refused(key.sign(&json!({"iss": "https://evil.test", "aud": AUDIENCE, "exp": now() + 60}))).await;
    assert!(matches!(&wrong_issuer, JwtRefusal::Invalid(reason) if reason.contains("Issuer")), "{wrong_issuer:?}");
    let wrong_audience = refused(key.sign(&json!({"iss": ISSUER, "aud": "grafana", "exp": now() + 60}))).await;
    assert!(matches!(&wrong_audience, JwtRefusal::Invalid(reason) if reason.contains("Audience")), "{wrong_audience:?}");
    refused(key.sign(&json!({"iss": ISSUER, "aud": AUDIENCE}))).await;

    let valid = key.sign(&claims("alice"));
    // alg: none, with and without a signature.
    let none = json!({"alg": "none", "typ": "JWT", "kid": "k1"});
    assert!(matches!(refused(forge(&valid, &none, None, "")).await, JwtRefusal::Malformed(_)));
    assert!(matches!(refused(forge(&valid, &none, None, valid.split('.').nth(2).unwrap())).await, JwtRefusal::Malformed(_)));
    // HS256 signed with the public key (the algorithm-confusion attack).
    let public_pem = key.pair.public_key_pem();
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("k1".into());
    let confused = jsonwebtoken::encode(&hs_header, &claims("mallory"), &EncodingKey::from_secret(public_pem.as_bytes()).unwrap()).unwrap();
    assert_eq!(refused(confused).await, JwtRefusal::Algorithm("HS256".into()));
    // A tampered payload under the original signature.
    let mut elevated = claims("alice");
    elevated["groups"] = json!(["admin"]);
    let tampered = forge(&valid, &json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}), Some(&elevated), valid.split('.').nth(2).unwrap());
    assert!(matches!(refused(tampered).await, JwtRefusal::Invalid(_)));
    // Signed by a key the provider never published, under a published kid.
    let stranger = TestKey::es256("k1");
    assert!(matches!(refused(stranger.sign(&claims("alice"))).await, JwtRefusal::Invalid(_)));

    // Unknown kid: one refetch, then no more within the refetch interval.
    let unknown = TestKey::es256("k-unknown");
    assert_eq!(refused(unknown.sign(&claims("alice"))).await, JwtRefusal::UnknownKey("k-unknown".into()));
    assert_eq!(server.fetches(), 2, "an unknown kid fetches the JWKS again");
    let other = TestKey::es256("k-other");
    assert_eq!(refused(other.sign(&claims("alice"))).await, JwtRefusal::UnknownKey("k-other".into()));
    assert_eq!(server.fetches(), 2, "rate-limited: no second fetch within jwks_refetch_secs");
    server.task.abort();
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_and_an_unreachable_jwks_keeps_the_cached_keys() {
    let old = TestKey::es256("2026-01");
    let server = JwksServer::start(vec![old.jwk()]).await;
    let verifier = JwtVerifier::new(&config(Some(server.url.clone()), 1)).unwrap();
    verifier.prefetch().await;
    verifier.verify(&old.sign(&claims("alice"))).await.unwrap();

    // The provider publishes a new key (Ed25519 this time) and signs with it.
    let new = TestKey::ed25519("2026-02");
    server.keys.lock().unwrap().push(new.jwk());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let claims_of = verifier.verify(&new.sign(&claims("bob"))).await.unwrap();
    assert_eq!(claims_of["sub"], "bob");
    assert_eq!(server.fetches(), 2);

    // The JWKS goes away: the cached keys keep working, an unknown kid is refused.
    let JwksServer { task, .. } = server;
    task.abort();
    let _ = task.await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let gone = TestKey::es256("2026-03");
    assert_eq!(verifier.verify(&gone.sign(&claims("carol"))).await.unwrap_err(), JwtRefusal::UnknownKey("2026-03".into()));
    verifier.verify(&old.sign(&claims("alice"))).await.unwrap();
    verifier.verify(&new.sign(&claims("bob"))).await.unwrap();
}

#[tokio::test]
async fn configured_pem_keys_verify_without_a_jwks_and_hmac_keys_in_a_jwks_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let key = TestKey::ed25519("pem-1");
    let file = dir.path().join("idp.pem");
    std::fs::write(&file, key.pair.public_key_pem()).unwrap();
    let pem_config = JwtConfig {
        public_keys: vec![JwtKeyConfig { file, algorithm: "EdDSA".into(), kid: None }],
        ..config(None, 30)
    };
    let verifier = JwtVerifier::new(&pem_config).unwrap();
    verifier.verify(&key.sign(&claims("dave"))).await.unwrap();
    let stranger = TestKey::ed25519("pem-1");
    assert!(verifier.verify(&stranger.sign(&claims("dave"))).await.is_err());

    // A JWKS that also offers a symmetric key: never used, so an HS256 token made with that
    // secret is refused.
    let secret = b"a-shared-secret-that-must-never-verify";
    let oct = json!({"kty": "oct", "kid": "sym", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret)});
    let server = JwksServer::start(vec![oct]).await;
    let verifier = JwtVerifier::new(&config(Some(server.url.clone()), 30)).unwrap();
    verifier.prefetch().await;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("sym".into());
    let token = jsonwebtoken::encode(&header, &claims("eve"), &EncodingKey::from_secret(secret).unwrap()).unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap_err(), JwtRefusal::Algorithm("HS256".into()));
    server.task.abort();
}

/// An RSA key pair made now with the `openssl` command: (private PEM, public PEM, JWK of the public half).
fn rsa_key(dir: &std::path::Path, kid: &str) -> (String, String, Value) {
    let private = dir.join(format!("{kid}.pem"));
    let openssl = |args: &[&str]| {
        let output = std::process::Command::new("openssl").args(args).output().expect("the openssl command");
        assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let path = private.to_str().unwrap();
    openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path]);
    let public = openssl(&["pkey", "-in", path, "-pubout"]);
    let modulus_hex = openssl(&["rsa", "-in", path, "-noout", "-modulus"]);
    let modulus_hex = modulus_hex.trim().trim_start_matches("Modulus=");
    let modulus: Vec<u8> = (0..modulus_hex.len()).step_by(2).map(|at| u8::from_str_radix(&modulus_hex[at..at + 2], 16).unwrap()).collect();
    let jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": URL_SAFE_NO_PAD.encode(modulus), "e": "AQAB"});
    (std::fs::read_to_string(&private).unwrap(), public, jwk)
}

/// An RS256 token of `claims` signed with the private PEM `private`, naming `kid`.
fn rs256(private: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(private.as_bytes()).unwrap()).unwrap()
}

#[tokio::test]
async fn rs256_tokens_verify_from_a_jwks_and_from_a_pem_key() {
    let dir = tempfile::tempdir().unwrap();
    let (private, public, jwk) = rsa_key(dir.path(), "rsa-1");
    let (stranger, _, _) = rsa_key(dir.path(), "rsa-2");

    let server = JwksServer::start(vec![jwk]).await;
    let verifier = JwtVerifier::new(&config(Some(server.url.clone()), 30)).unwrap();
    verifier.verify(&rs256(&private, "rsa-1", &claims("frank"))).await.unwrap();
    assert!(verifier.verify(&rs256(&stranger, "rsa-1", &claims("frank"))).await.is_err(), "another key's signature");
    server.task.abort();

    let file = dir.path().join("idp-public.pem");
    std::fs::write(&file, public).unwrap();
    let pem_config = JwtConfig {
        public_keys: vec![JwtKeyConfig { file, algorithm: "RS256".into(), kid: None }],
        ..config(None, 30)
    };
    let verifier = JwtVerifier::new(&pem_config).unwrap();
    verifier.verify(&rs256(&private, "any", &claims("grace"))).await.unwrap();
    assert!(verifier.verify(&rs256(&stranger, "any", &claims("grace"))).await.is_err());
}
