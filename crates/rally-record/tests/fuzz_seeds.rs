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

/// A valid 12-tick arena recording: three players, one input a tick, a hash every 10.
fn arena_12_ticks() -> Vec<u8> {
    use rally_game::{Game, Rng, Tick};
    use rally_record::{encode, state_hash, EndReason, Header};
    let seed = 0x5eed;
    let header = Header {
        room_id: 1,
        kind: "arena".into(),
        game_version: arena::Arena::new().version().into(),
        options: vec![0x80],
        seed,
        tick_hz: 20,
        hash_every: 10,
        started_unix_ms: 1_765_000_000_000,
    };
    let mut f = Vec::new();
    encode::header(&mut f, &header);
    let mut game = arena::Arena::new();
    for p in 1..=3 {
        let accepted = game.join(p).is_ok();
        encode::join(&mut f, p, 0, accepted);
    }
    let mut rng = Rng::new(seed);
    let (mut room, mut views) = (Vec::new(), Vec::new());
    for n in 1..=12u64 {
        let p = (n % 3) as u32 + 1;
        let mut input = Vec::new();
        arena::encode_input(&mut input, (n as f32 / 6.0) - 1.0, 0.5);
        let _ = game.input(p, n as u32, &input);
        encode::input(&mut f, p, n as u32, &input);
        room.clear();
        views.clear();
        let mut tick = Tick::new(
            n,
            std::time::Duration::from_millis(50),
            &mut room,
            &mut views,
        )
        .with_rng(&mut rng);
        game.tick(&mut tick);
        encode::tick(&mut f, n, 50_000_000);
        if n % 10 == 0 {
            encode::hash(&mut f, n, state_hash(&game, &room));
        }
    }
    encode::end(&mut f, EndReason::Empty, 12, 600, "null");
    f
}

/// Rewrites the format-dependent seeds after a change of the format:
/// `cargo test -p rally-record --test fuzz_seeds -- --ignored write_seeds`
/// (`huge-length` is a bare header prefix with an absurd length and needs no update).
#[test]
#[ignore]
fn write_seeds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/recording_reader");
    let valid = arena_12_ticks();
    std::fs::write(dir.join("arena-12-ticks"), &valid).expect("write a seed");
    // Cut in the middle of the file: inside some record, as a crash leaves it.
    std::fs::write(dir.join("cut-inside-a-tick"), &valid[..valid.len() / 2]).expect("write a seed");
}
