//! Criterion benches: validation (cold and via the verified-token cache) for
//! HS512, EdDSA and RS256; `authorize`; and the whole guard + extractor +
//! reissue path through an actix-web test service.
//!
//! `cargo bench -p policy-core -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use actix_web::{App, HttpResponse, test, web};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use policy_core::*;
use uuid::Uuid;

const RSA_PRIVATE: &str = include_str!("../src/testdata/rsa_private.pem");
const ED25519_PRIVATE: &str = include_str!("../src/testdata/ed25519_private.pem");
const TI_SELF: RoutePolicy = RoutePolicy::new(TokenTypes::NONE, Bindings::TASK_INSTANCE);

fn keys() -> Vec<(&'static str, SigningKey)> {
    vec![
        (
            "HS512",
            SigningKey::from_secret([7u8; 64], Algorithm::HS512, None).unwrap(),
        ),
        ("EdDSA", SigningKey::from_pem(ED25519_PRIVATE).unwrap()),
        ("RS256", SigningKey::from_pem(RSA_PRIVATE).unwrap()),
    ]
}

fn validator(key: &SigningKey, cache_capacity: usize) -> TokenValidator {
    let config = ValidationConfig {
        cache_capacity,
        ..ValidationConfig::default()
    };
    TokenValidator::new(KeySource::signing_key(key), config).unwrap()
}

fn token(key: &SigningKey, ti: Uuid) -> String {
    TokenGenerator::new(key.clone(), GeneratorConfig::default())
        .generate(ti, TokenType::Execution, Duration::from_secs(3600))
        .unwrap()
}

fn validate(c: &mut Criterion) {
    let ti = Uuid::new_v4();
    let mut group = c.benchmark_group("validate");
    for (name, key) in keys() {
        let token = token(&key, ti);
        let cold = validator(&key, 0);
        group.bench_function(format!("{name}/cold"), |b| {
            b.iter(|| cold.validate(black_box(&token)).unwrap())
        });
        let cached = validator(&key, 10_000);
        cached.validate(&token).unwrap();
        group.bench_function(format!("{name}/cached"), |b| {
            b.iter(|| cached.validate(black_box(&token)).unwrap())
        });
    }
    group.finish();
}

fn generate(c: &mut Criterion) {
    let ti = Uuid::new_v4();
    let mut group = c.benchmark_group("generate");
    for (name, key) in keys() {
        let generator = TokenGenerator::new(key, GeneratorConfig::default());
        group.bench_function(name, |b| {
            b.iter(|| {
                generator
                    .generate(
                        black_box(ti),
                        TokenType::Execution,
                        Duration::from_secs(600),
                    )
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn authorize_bench(c: &mut Criterion) {
    let ti = Uuid::new_v4();
    let key = SigningKey::from_secret([7u8; 64], Algorithm::HS512, None).unwrap();
    let validator = validator(&key, 10_000);
    let token = token(&key, ti);
    let request = || {
        test::TestRequest::default()
            .app_data(validator.clone())
            .insert_header(("Authorization", format!("Bearer {token}")))
            .param("task_instance_id", ti.to_string())
            .to_http_request()
    };
    let mut group = c.benchmark_group("authorize");
    // A new request whose token the cross-request cache knows: header parsing,
    // cache lookup, time checks, storing the claims in the request, policy.
    group.bench_function("new request, cached token", |b| {
        b.iter_batched(
            request,
            |req| authorize(&req, &TI_SELF).unwrap(),
            BatchSize::SmallInput,
        )
    });
    // Every later use within the request: read the extensions, check the policy.
    let req = request();
    authorize(&req, &TI_SELF).unwrap();
    group.bench_function("claims already in request", |b| {
        b.iter(|| authorize(black_box(&req), &TI_SELF).unwrap())
    });
    group.finish();
}

async fn handler(token: Token) -> HttpResponse {
    HttpResponse::Ok().body(token.sub().to_string())
}

async fn open() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

fn extractor_path(c: &mut Criterion) {
    let ti = Uuid::new_v4();
    let key = SigningKey::from_secret([7u8; 64], Algorithm::HS512, None).unwrap();
    let generator = TokenGenerator::new(key.clone(), GeneratorConfig::default());
    let token = token(&key, ti);
    let system = actix_web::rt::System::new();
    let mut group = c.benchmark_group("request");
    for (name, cache) in [
        ("guard+Token+Reissue, cached token", 10_000),
        ("guard+Token+Reissue, cache off", 0),
    ] {
        let validator = validator(&key, cache);
        let app = system.block_on(test::init_service(
            App::new()
                .app_data(validator.clone())
                .wrap(Reissue::new(generator.clone()))
                .service(
                    web::resource("/ti/{task_instance_id}/heartbeat")
                        .wrap(Enforce::new(TI_SELF))
                        .route(web::put().to(handler)),
                )
                .route("/open", web::put().to(open))
                .route("/open/{task_instance_id}/heartbeat", web::put().to(open)),
        ));
        let uri = format!("/ti/{ti}/heartbeat");
        group.bench_function(name, |b| {
            b.iter(|| {
                let req = test::TestRequest::put()
                    .uri(&uri)
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .to_request();
                let res = system.block_on(test::call_service(&app, req));
                assert!(res.status().is_success());
            })
        });
        if cache == 0 {
            let open_uri = format!("/open/{ti}/heartbeat");
            group.bench_function("unprotected route, same app", |b| {
                b.iter(|| {
                    let req = test::TestRequest::put()
                        .uri(&open_uri)
                        .insert_header(("Authorization", format!("Bearer {token}")))
                        .to_request();
                    let res = system.block_on(test::call_service(&app, req));
                    assert!(res.status().is_success());
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, validate, generate, authorize_bench, extractor_path);
criterion_main!(benches);
