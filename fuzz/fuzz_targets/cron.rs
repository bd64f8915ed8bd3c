//! The cron grammar never panics, and `parse` accepts exactly the schedules
//! for which kube-apiserver's rules report no problem.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let problems = beads_contract::cron::problems(text);
    assert_eq!(beads_contract::cron::parse(text).is_ok(), problems.is_empty());
    if text.contains("TZ") {
        assert!(problems.contains(&beads_contract::cron::ScheduleError::TimeZone));
    }
});
