//! Runs every example at a small size, so CI keeps them working. `cargo test` builds the
//! examples before it runs the tests; this test runs those binaries.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    // target/<profile>/deps/examples-<hash>  ->  target/<profile>/examples/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir").join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run the whole suite (`cargo test -p flash-map`), which builds the examples",
        path.display()
    );
    path
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name)).args(args).env("RUST_LOG", "warn").output().expect("start example");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{name} failed: {}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("verified"), "{name} did not verify its result:\n{stdout}");
    stdout
}

#[test]
fn quickstart() {
    let out = run("quickstart", &["20000"]);
    assert!(out.contains("get hit") && out.contains("M ops/s"), "{out}");
}

#[test]
fn blockchain_state() {
    let out = run("blockchain_state", &["20000", "10", "1000"]);
    assert!(out.contains("snapshot"), "{out}");
}

#[test]
fn order_book() {
    run("order_book", &["50", "2000"]);
}

#[test]
fn packet_dedup() {
    let out = run("packet_dedup", &["10", "5000"]);
    assert!(out.contains("duplicate rate"), "{out}");
}

#[test]
fn db_index_join() {
    run("db_index_join", &["20000", "40000"]);
}

#[test]
fn kmer_count_generated_and_from_fasta() {
    let out = run("kmer_count", &["-", "200000"]);
    assert!(out.contains("top k-mers"), "{out}");
    let dir = std::env::temp_dir().join(format!("flash-map-kmer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fa = dir.join("t.fa");
    let seq: String = (0..5000u64).map(|i| ['A', 'C', 'G', 'T', 'N'][(i * i % 7 % 5) as usize]).collect();
    std::fs::write(&fa, format!(">test sequence\n{}\n{}\n", &seq[..2500], &seq[2500..])).unwrap();
    let out = run("kmer_count", &[fa.to_str().unwrap()]);
    assert!(out.contains("5000 bases"), "{out}");
    std::fs::remove_dir_all(dir).ok();
}
