//! The built-in engine on inputs of 1,000 and 10,000 characters (and a hostile run of `#`):
//! no function may be quadratic, so the ratio of the two sizes' times stays near 10. Run with
//! `cargo bench -p crier-ai --bench builtin` and compare the `1k` and `10k` lines of one run.

use crier_ai::Persona;
use crier_ai::builtin::{fit, hashtags, learn, optimise, thread};
use criterion::{Criterion, criterion_group, criterion_main};

fn texts(chars: usize) -> Vec<(&'static str, String)> {
    let unit = "Sentence one, with a clause. 👨\u{200D}👩\u{200D}👧 日本語の文章です。 https://e.x/a #tag!!! ";
    let mut text = String::new();
    while text.chars().count() < chars {
        text.push_str(unit);
    }
    vec![("mixed", text), ("hashes", "#".repeat(chars))]
}

fn bench(c: &mut Criterion) {
    let rules = crier_networks::mastodon::DEFAULT_RULES.clone();
    let persona = Persona::default();
    for (size, chars) in [("1k", 1_000), ("10k", 10_000)] {
        for (shape, text) in texts(chars) {
            let t = text.as_str();
            c.bench_function(&format!("thread/{shape}/{size}"), |b| {
                b.iter(|| thread(t, &rules, 50))
            });
            c.bench_function(&format!("fit/{shape}/{size}"), |b| {
                b.iter(|| fit(t, &rules))
            });
            c.bench_function(&format!("hashtags/{shape}/{size}"), |b| {
                b.iter(|| hashtags(t, &[], &persona, &rules, 30))
            });
            c.bench_function(&format!("optimise/{shape}/{size}"), |b| {
                b.iter(|| optimise(t, &rules, &persona))
            });
            c.bench_function(&format!("learn/{shape}/{size}"), |b| {
                b.iter(|| learn(&[t; 20]))
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);
