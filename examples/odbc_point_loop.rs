//! The ODBC driver's own ceiling for the benchmark's point lookup: THREADS threads, each with
//! its own connection and prepared statement, run the lookup as fast as they can for SECONDS
//! and fetch every column as text (as the gateway does). No HTTP, no gateway.
//!   cargo run --release --example odbc_point_loop -- CONNECTION_STRING THREADS SECONDS
//! Prints `queries_per_second p50_ms p99_ms`.

use std::time::{Duration, Instant};

use odbc_api::{ConnectionOptions, Cursor, IntoParameter};

const SQL: &str = "SELECT JOBNO, JOBDS, CUSNO, STSCD, RUSHF, PLNCD, ORDDT, DUEDT, CMPDT, QTYOR, \
                   QTYCM, UNTPR FROM JOBMST WHERE JOBNO = ?";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, cs, threads, seconds] = args.as_slice() else {
        eprintln!("usage: odbc_point_loop CONNECTION_STRING THREADS SECONDS");
        std::process::exit(2);
    };
    let threads: usize = threads.parse().expect("THREADS");
    let run_for = Duration::from_secs(seconds.parse().expect("SECONDS"));
    let env = odbc_api::environment().expect("ODBC environment");
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cs = cs.clone();
            std::thread::spawn(move || {
                let conn = env
                    .connect_with_connection_string(&cs, ConnectionOptions::default())
                    .expect("connect");
                let mut stmt = conn.prepare(SQL).expect("prepare");
                let mut latencies = Vec::with_capacity(200_000);
                let mut seed: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut buf = Vec::new();
                while started.elapsed() < run_for {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let id = i64::try_from(seed % 200_000 + 1).expect("id");
                    let q = Instant::now();
                    if let Some(mut cursor) = stmt.execute(&id.into_parameter()).expect("execute") {
                        while let Some(mut row) = cursor.next_row().expect("fetch") {
                            for col in 1..=12 {
                                row.get_text(col, &mut buf).expect("value");
                            }
                        }
                    }
                    latencies.push(u32::try_from(q.elapsed().as_micros()).unwrap_or(u32::MAX));
                }
                latencies
            })
        })
        .collect();
    let mut all: Vec<u32> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    // Percentiles by rank: `per_mille` of the sorted latencies.
    let q = |per_mille: usize| {
        f64::from(all[(all.len() * per_mille / 1000).min(all.len() - 1)]) / 1000.0
    };
    let count = u32::try_from(all.len()).unwrap_or(u32::MAX);
    println!(
        "{:.0} {:.2} {:.2}",
        f64::from(count) / elapsed,
        q(500),
        q(990)
    );
}
