//! A recording file: the reader (`rally_record::fuzz_read`), then a whole replay of it on
//! an arena game, as `rally replay` and the spectator stream of a finished match run one.
//! Neither may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rally_record::fuzz_read(data);
    let _ = rally_record::verify(
        data,
        |_| Some(Box::new(arena::Arena::new()) as Box<dyn rally_record::Game>),
        |_, _| {},
    );
});
