use super::*;
use proptest::prelude::*;

fn bits(vals: impl IntoIterator<Item = u64>) -> u64 {
    vals.into_iter().fold(0, |b, v| b | (1 << v))
}

#[test]
fn accepts_what_kubernetes_accepts() {
    for s in [
        "* * * * *",
        "*/5 * * * *",
        "0 3 * * 1-5",
        "0 0 1 jan,jul *",
        "15 2 * * SUN",
        "0 0 ? * *",
        "0 0 * * 0",
        "0 0 * * 6",
        "1,,2 * * * *",
        "5/15 * * * *",
        "@hourly",
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@midnight",
        "@every 1h",
        "@every 1h30m",
        "@every 1.5h",
        "@every 500ms",
        "@every -1h",
        "  0  0\t* * *  ",
    ] {
        assert!(parse(s).is_ok(), "{s}: {:?}", parse(s));
    }
}

#[test]
fn upstream_messages() {
    let msg = |s: &str| parse_standard(s).unwrap_err().to_string();
    assert_eq!(msg(""), "empty spec string");
    assert_eq!(msg("bad"), "expected exactly 5 fields, found 1: [bad]");
    assert_eq!(
        msg("0 0 * * * *"),
        "expected exactly 5 fields, found 6: [0 0 * * * *]"
    );
    assert_eq!(
        msg("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(msg("0 0 * * 7"), "end of range (7) above maximum (6): 7");
    assert_eq!(
        msg("0 0 0 * *"),
        "beginning of range (0) below minimum (1): 0"
    );
    assert_eq!(
        msg("5-1 * * * *"),
        "beginning of range (5) beyond end of range (1): 5-1"
    );
    assert_eq!(
        msg("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(msg("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(msg("*/2/3 * * * *"), "too many slashes: */2/3");
    assert_eq!(
        msg("x * * * *"),
        "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        msg("99999999999999999999 * * * *"),
        "failed to parse int from 99999999999999999999: strconv.Atoi: parsing \"99999999999999999999\": value out of range"
    );
    assert_eq!(
        msg("*/--5 * * * *"),
        "failed to parse int from --5: strconv.Atoi: parsing \"--5\": invalid syntax"
    );
    // '-' splits a range before any number is read: only a step can be negative.
    assert_eq!(msg("*/-1 * * * *"), "negative number (-1) not allowed: -1");
    assert_eq!(
        msg("0 0 * * -1"),
        "failed to parse int from : strconv.Atoi: parsing \"\": invalid syntax"
    );
    assert_eq!(msg("@often"), "unrecognized descriptor: @often");
    assert_eq!(msg("@hourly "), "unrecognized descriptor: @hourly ");
    assert_eq!(
        msg("@every 1x"),
        "failed to parse duration @every 1x: time: unknown unit \"x\" in duration \"1x\""
    );
    assert_eq!(
        msg("@every 10"),
        "failed to parse duration @every 10: time: missing unit in duration \"10\""
    );
    assert_eq!(
        msg("@every "),
        "failed to parse duration @every : time: invalid duration \"\""
    );
}

#[test]
fn the_failing_field_is_named() {
    let e = parse_standard("0 0 * * 7").unwrap_err();
    assert_eq!(e.field(), Some(Field::DayOfWeek));
    let e = parse_standard("0 0 * 13 *").unwrap_err();
    assert_eq!(e.field(), Some(Field::Month));
    assert_eq!(parse_standard("@often").unwrap_err().field(), None);
}

#[test]
fn kube_apiserver_refuses_time_zones() {
    // robfig accepts the prefix …
    let Ok(Schedule::Spec(spec)) = parse_standard("CRON_TZ=UTC 0 * * * *") else {
        panic!("ParseStandard takes a CRON_TZ prefix");
    };
    assert_eq!(spec.location.as_deref(), Some("UTC"));
    // … kube-apiserver does not, and says both things when both are wrong.
    assert_eq!(parse("CRON_TZ=UTC 0 * * * *"), Err(ScheduleError::TimeZone));
    assert_eq!(
        parse("TZ=Europe/Paris @daily"),
        Err(ScheduleError::TimeZone)
    );
    let both = problems("TZ 0 * * *");
    assert_eq!(both.len(), 2, "{both:?}");
    assert!(matches!(both[0], ScheduleError::Syntax(_)));
    assert_eq!(both[1], ScheduleError::TimeZone);
    assert_eq!(problems(""), vec![ScheduleError::Required]);
    assert!(problems("@daily").is_empty());
}

#[test]
fn typed_result_holds_the_times() {
    let Ok(Schedule::Spec(s)) = parse("*/15 9-17 * jan-mar mon,FRI") else {
        panic!("valid");
    };
    assert_eq!(s.minute, bits([0, 15, 30, 45]));
    assert_eq!(s.hour, bits(9..=17));
    assert_eq!(s.day_of_month, bits(1..=31));
    assert_eq!(s.month, bits([1, 2, 3]));
    assert_eq!(s.day_of_week, bits([1, 5]));
    let Ok(Schedule::Spec(s)) = parse("5/20 * * * *") else {
        panic!("valid");
    };
    assert_eq!(s.minute, bits([5, 25, 45]));
    let Ok(Schedule::Spec(w)) = parse("@weekly") else {
        panic!("valid");
    };
    assert_eq!((w.minute, w.hour, w.day_of_week), (1, 1, 1));
    assert_eq!(
        parse("@every 1h30m"),
        Ok(Schedule::Every(Duration::from_secs(5400)))
    );
    assert_eq!(
        parse("@every 10ms"),
        Ok(Schedule::Every(Duration::from_secs(1)))
    );
    assert_eq!(
        parse("@every 2.9s"),
        Ok(Schedule::Every(Duration::from_secs(2)))
    );
}

#[test]
fn go_durations() {
    assert_eq!(go_parse_duration("1h"), Ok(3_600_000_000_000));
    assert_eq!(go_parse_duration("-1.5m"), Ok(-90_000_000_000));
    assert_eq!(go_parse_duration(".5s"), Ok(500_000_000));
    assert_eq!(go_parse_duration("1.s"), Ok(1_000_000_000));
    assert_eq!(go_parse_duration("+0"), Ok(0));
    assert_eq!(go_parse_duration("1µs2μs3us"), Ok(6_000));
    assert_eq!(go_parse_duration("2562047h47m16.854775807s"), Ok(i64::MAX));
    for bad in [
        "",
        ".",
        "-.s",
        "1",
        "x1s",
        "2562047h47m16.854775808s",
        "1s ",
        " 1s",
    ] {
        assert!(go_parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        go_parse_duration("1é").unwrap_err().to_string(),
        "time: unknown unit \"\\xc3\\xa9\" in duration \"1\\xc3\\xa9\""
    );
}

/// One expression of a field, generated from the grammar with values in
/// range, and the minutes/hours/… it stands for.
fn expr(field: Field) -> impl Strategy<Value = (String, u64)> {
    let (min, max) = (field.min(), field.max());
    let names = field.names();
    let value = (min..=max).prop_flat_map(move |v| {
        let named: Vec<String> = names
            .iter()
            .filter(|(_, n)| *n == v)
            .flat_map(|(s, _)| [s.to_string(), s.to_uppercase()])
            .collect();
        let mut forms = vec![v.to_string()];
        forms.extend(named);
        (Just(v), proptest::sample::select(forms))
    });
    let step = 1..=(max + 1);
    prop_oneof![
        Just(("*".to_string(), get_bits(min, max, 1))),
        Just(("?".to_string(), get_bits(min, max, 1))),
        value.clone().prop_map(|(v, t)| (t, 1 << v)),
        (value.clone(), value.clone()).prop_map(move |((a, at), (b, bt))| {
            let (lo, hi, lt, ht) = if a <= b {
                (a, b, at, bt)
            } else {
                (b, a, bt, at)
            };
            (format!("{lt}-{ht}"), get_bits(lo, hi, 1))
        }),
        step.clone()
            .prop_map(move |s| (format!("*/{s}"), get_bits(min, max, s))),
        (value, step).prop_map(move |((v, t), s)| (format!("{t}/{s}"), get_bits(v, max, s))),
    ]
}

fn field_text(field: Field) -> impl Strategy<Value = (String, u64)> {
    proptest::collection::vec(expr(field), 1..4).prop_map(|es| {
        let text = es
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join(",");
        (text, es.iter().fold(0, |b, (_, v)| b | v))
    })
}

proptest! {
    #[test]
    fn every_generated_spec_parses_to_its_times(
        m in field_text(Field::Minute),
        h in field_text(Field::Hour),
        dom in field_text(Field::DayOfMonth),
        mon in field_text(Field::Month),
        dow in field_text(Field::DayOfWeek),
    ) {
        let text = format!("{} {} {} {} {}", m.0, h.0, dom.0, mon.0, dow.0);
        let parsed = parse(&text);
        prop_assert_eq!(
            parsed,
            Ok(Schedule::Spec(Spec {
                minute: m.1,
                hour: h.1,
                day_of_month: dom.1,
                month: mon.1,
                day_of_week: dow.1,
                location: None,
            })),
            "{}", text
        );
    }

    #[test]
    fn a_value_past_the_maximum_is_refused_in_that_field(
        which in 0usize..5,
        over in 1u64..100,
    ) {
        let field = Field::ALL[which];
        let mut fields = ["0", "0", "1", "1", "0"].map(String::from);
        fields[which] = (field.max() + over).to_string();
        let e = parse_standard(&fields.join(" ")).unwrap_err();
        prop_assert_eq!(e.field(), Some(field));
        let is_above_maximum = matches!(
            e,
            CronError::Field { error: RangeError::AboveMaximum { .. }, .. }
        );
        prop_assert!(is_above_maximum);
    }

    #[test]
    fn never_panics_and_tz_is_always_refused(s in "\\PC{0,40}") {
        let problems = problems(&s);
        if s.contains("TZ") {
            prop_assert!(problems.contains(&ScheduleError::TimeZone));
        }
        prop_assert_eq!(parse(&s).is_ok(), problems.is_empty());
    }

    #[test]
    fn arbitrary_field_shapes_never_panic(
        s in "[0-9a-zA-Z*?/,\\-]{0,8}( [0-9a-zA-Z*?/,\\-]{0,8}){0,5}"
    ) {
        let _ = parse(&s);
    }

    #[test]
    fn every_go_duration_text_is_accepted(h in 0u64..1000, m in 0u64..60, s in 0u64..60) {
        let text = format!("@every {h}h{m}m{s}s");
        let secs = (h * 3600 + m * 60 + s).max(1);
        prop_assert_eq!(parse(&text), Ok(Schedule::Every(Duration::from_secs(secs))));
    }
}
