//! Our resize, alone, for `bench/resize.py`: makes the thumbnail of one file `--repeat` times
//! in this thread and prints the CPU time of each run (ms, one per line) on stdout. The input
//! is read into memory first; each run decodes, resizes and encodes, as the worker does.
//!
//! Usage: `cargo run --release --example thumbnail -- IN OUT [--repeat N] [--png] [--size 300]`

use std::time::Duration;

use api::images::{DecodeLimits, OutputFormat, ThumbnailSpec, render};

fn cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let input = args
        .next()
        .expect("usage: thumbnail IN OUT [--repeat N] [--png]");
    let output = args
        .next()
        .expect("usage: thumbnail IN OUT [--repeat N] [--png]");
    let mut repeat = 1;
    let mut spec = ThumbnailSpec {
        format: OutputFormat::Jpeg,
        ..ThumbnailSpec::default()
    };
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--repeat N")
            }
            "--png" => spec.format = OutputFormat::Png,
            "--size" => {
                let size = args.next().and_then(|n| n.parse().ok()).expect("--size N");
                spec.width = size;
                spec.height = size;
            }
            other => panic!("unknown argument {other}"),
        }
    }
    let bytes = std::fs::read(&input).expect("reading the input");
    let mut last = None;
    for _ in 0..repeat {
        let started = cpu_time();
        let thumbnail =
            render(&bytes, &spec, DecodeLimits::default()).expect("making the thumbnail");
        let spent = cpu_time() - started;
        println!("{:.3}", spent.as_secs_f64() * 1000.0);
        last = Some(thumbnail);
    }
    if let Some(thumbnail) = last {
        std::fs::write(&output, thumbnail.bytes).expect("writing the output");
    }
}
