//! The runner's metadata.json parser never panics, and what it accepts it
//! writes back in a form it reads the same way.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(meta) = beads_contract::Metadata::parse(text) {
        let again = beads_contract::Metadata::parse(&meta.to_json()).expect("own output parses");
        assert_eq!(meta, again);
    }
});
