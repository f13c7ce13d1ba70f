//! The fuzz target's seeds (`fuzz/seeds/recording_reader`), replayed on stable in every
//! `cargo test`: the reader and a whole replay on an arena must not panic on any of them,
//! and the valid seed replays completely.

use std::path::Path;

fn arena(_: &rally_record::Header) -> Option<Box<dyn rally_record::Game>> {
    Some(Box::new(arena::Arena::new()))
}

#[test]
fn every_seed_reads_and_replays_without_a_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/recording_reader");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("the seeds directory") {
        let path = entry.expect("a seed").path();
        let bytes = std::fs::read(&path).expect("read a seed");
        if let Ok((_, mut r)) = rally_record::Reader::new(&bytes) {
            while let Ok(Some(_)) = r.next_record() {}
        }
        let outcome = rally_record::verify(&bytes, arena, |_, _| {});
        if path.ends_with("arena-12-ticks") {
            let report = outcome.expect("the valid seed replays");
            assert!(report.complete());
            assert_eq!(report.ticks, 12);
        }
        seen += 1;
    }
    assert!(seen >= 3, "{seen} seeds");
}
