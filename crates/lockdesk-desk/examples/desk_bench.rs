//! Runs the desk core's benchmarks and prints their figures as JSON lines:
//! `cargo run --release -p lockdesk-desk --example desk_bench -- [all|apply|history] [EVENTS]
//! [CONVERSATIONS] [IDENTITIES]` (defaults: all 20000 1000000 100000). Data goes to a temporary
//! folder, removed afterwards.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "all".into());
    let nums: Vec<u64> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    let events = nums.first().copied().unwrap_or(20_000) as usize;
    let conversations = nums.get(1).copied().unwrap_or(1_000_000);
    let identities = nums.get(2).copied().unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    if mode == "all" || mode == "apply" {
        for batch in [1, 64, 256] {
            let f = lockdesk_desk::bench::apply_throughput(dir.path(), events, batch)?;
            println!("{}", serde_json::to_string(&f)?);
        }
    }
    if mode == "all" || mode == "history" {
        let h =
            lockdesk_desk::bench::history_latency(dir.path(), conversations, identities, 10_000)?;
        println!("{}", serde_json::to_string(&h)?);
    }
    Ok(())
}
