//! Shared by the examples: arguments, deterministic data, a sink that keeps answers.
#![allow(dead_code)]

use std::cell::RefCell;
use std::rc::Rc;

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::Stream;

/// Logs at `info` unless `RUST_LOG` says otherwise, runs `run`, and prints its error.
pub(crate) fn main(run: fn() -> Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Prints the job's throughput next to the single FlashMap's, then the verdict.
pub(crate) fn report(
    workers: usize,
    total: usize,
    unit: &str,
    secs: f64,
    single_secs: f64,
    verified: Result<&str, &str>,
) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "{workers} workers: {total} {unit} in {secs:.3} s = {:.1} M {unit}/s (single FlashMap {:.1})",
        total as f64 / secs / 1e6,
        total as f64 / single_secs / 1e6
    );
    let what = verified?;
    println!("verified: {what}");
    Ok(())
}

/// The value of `--name N` in `args`, or `default`.
pub(crate) fn opt(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} wants a number, got {v}")))
        .unwrap_or(default)
}

/// SplitMix64: a deterministic stream of random words.
pub(crate) fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Keeps every record of `stream` with its time, in arrival order.
pub(crate) fn keep<T: timely::progress::Timestamp + timely::order::TotalOrder, D: Clone + 'static>(
    stream: Stream<'_, T, Vec<D>>,
) -> Rc<RefCell<Vec<(T, D)>>> {
    let got = Rc::new(RefCell::new(Vec::new()));
    let sink = Rc::clone(&got);
    stream.sink(Pipeline, "Keep", move |(input, _)| {
        input.for_each(|cap, data| {
            if let Some(t) = cap.least() {
                sink.borrow_mut().extend(data.drain(..).map(|d| (t.clone(), d)));
            }
        })
    });
    got
}
