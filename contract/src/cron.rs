//! The cron grammar of Kubernetes CronJob schedules, once, for the provider's
//! plan-time validation and the stand-in API server alike.
//!
//! kube-apiserver validates `spec.schedule` with robfig/cron v3's
//! `ParseStandard` (pkg/apis/batch/validation `validateScheduleFormat`) and,
//! on create, refuses any schedule containing `TZ` ("cannot use TZ or CRON_TZ
//! in schedule, use timeZone field instead"). [`parse_standard`] is a port of
//! `ParseStandard` (github.com/robfig/cron/v3 parser.go, v3.0.1, the version
//! Kubernetes vendors) with its error texts; [`parse`] and [`problems`] add
//! the kube-apiserver rules on top.

use std::fmt;
use std::time::Duration;

/// A schedule that `ParseStandard` accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Five fields, or a descriptor such as `@hourly` (upstream turns those
    /// into the same `SpecSchedule`).
    Spec(Spec),
    /// `@every <duration>`: upstream's `Every` raises anything below one
    /// second to one second and drops the fraction of a second.
    Every(Duration),
}

/// The times a five-field schedule fires, as upstream's bit sets: bit `n` of
/// `minute` is set when the schedule fires at minute `n`, and so on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Minutes 0–59.
    pub minute: u64,
    /// Hours 0–23.
    pub hour: u64,
    /// Days of the month 1–31.
    pub day_of_month: u64,
    /// Months 1–12.
    pub month: u64,
    /// Days of the week 0–6, Sunday = 0.
    pub day_of_week: u64,
    /// The `TZ=`/`CRON_TZ=` location, when one was given (kube-apiserver
    /// refuses it; see [`parse`]).
    pub location: Option<String>,
}

impl Spec {
    /// Whether bit `n` is set in `bits` (a field of this struct).
    pub fn has(bits: u64, n: u32) -> bool {
        n < 64 && bits & (1u64 << n) != 0
    }
}

/// One of the five fields of a standard spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// First field, 0–59.
    Minute,
    /// Second field, 0–23.
    Hour,
    /// Third field, 1–31.
    DayOfMonth,
    /// Fourth field, 1–12 or `jan`–`dec`.
    Month,
    /// Fifth field, 0–6 or `sun`–`sat` (7 is refused, as upstream does).
    DayOfWeek,
}

impl Field {
    /// The five fields in the order a spec writes them.
    pub const ALL: [Field; 5] = [
        Field::Minute,
        Field::Hour,
        Field::DayOfMonth,
        Field::Month,
        Field::DayOfWeek,
    ];

    /// Smallest value upstream accepts (its `bounds.min`).
    pub fn min(self) -> u64 {
        self.bounds().min
    }

    /// Largest value upstream accepts (its `bounds.max`).
    pub fn max(self) -> u64 {
        self.bounds().max
    }

    /// The names upstream accepts for values (lower case).
    pub fn names(self) -> &'static [(&'static str, u64)] {
        self.bounds().names
    }

    fn bounds(self) -> &'static Bounds {
        match self {
            Field::Minute => &MINUTES,
            Field::Hour => &HOURS,
            Field::DayOfMonth => &DOM,
            Field::Month => &MONTHS,
            Field::DayOfWeek => &DOW,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day of month",
            Field::Month => "month",
            Field::DayOfWeek => "day of week",
        })
    }
}

/// Why `ParseStandard` refused a schedule. `Display` is upstream's error
/// text, the detail kube-apiserver puts in its `Invalid value` cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// The schedule is the empty string.
    #[error("empty spec string")]
    Empty,
    /// Not five whitespace-separated fields (upstream prints Go's `%s` of
    /// the field slice: `[a b c]`).
    #[error("expected exactly 5 fields, found {}: [{}]", .0.len(), .0.join(" "))]
    FieldCount(Vec<String>),
    /// One expression of one field is wrong.
    #[error("{error}")]
    Field {
        /// Which of the five fields.
        field: Field,
        /// What is wrong with it.
        error: RangeError,
    },
    /// `@` followed by something that is not a known descriptor.
    #[error("unrecognized descriptor: {0}")]
    UnrecognizedDescriptor(String),
    /// `@every` followed by something Go's `time.ParseDuration` refuses.
    #[error("failed to parse duration {descriptor}: {error}")]
    Every {
        /// The whole descriptor, `@every …`.
        descriptor: String,
        /// Go's error.
        error: GoDurationError,
    },
    /// A `TZ=`/`CRON_TZ=` prefix whose location is not a location name.
    /// (Upstream panics when the prefix is not followed by a space; this
    /// port refuses instead.)
    #[error("provided bad location {location}: {why}")]
    BadLocation {
        /// The text after `=`.
        location: String,
        /// Go's `time.LoadLocation` error text.
        why: String,
    },
}

impl CronError {
    /// The field at fault, when the error is about one of the five fields.
    pub fn field(&self) -> Option<Field> {
        match self {
            CronError::Field { field, .. } => Some(*field),
            _ => None,
        }
    }
}

/// What is wrong with one comma-separated expression of a field (upstream's
/// `getRange`, `parseIntOrName` and `mustParseInt`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not a number (nor a name, where the field has names).
    #[error("failed to parse int from {expr}: strconv.Atoi: parsing {}: {why}", go_quote(.expr))]
    NotANumber {
        /// The text that should have been a number.
        expr: String,
        /// `invalid syntax` or `value out of range`.
        why: AtoiError,
    },
    /// A negative number.
    #[error("negative number ({value}) not allowed: {expr}")]
    Negative {
        /// The number.
        value: i64,
        /// The text.
        expr: String,
    },
    /// `a-b-c`.
    #[error("too many hyphens: {0}")]
    TooManyHyphens(String),
    /// `a/b/c`.
    #[error("too many slashes: {0}")]
    TooManySlashes(String),
    /// The start is below the field's minimum.
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum {
        /// First value of the range.
        start: u64,
        /// The field's minimum.
        min: u64,
        /// The expression.
        expr: String,
    },
    /// The end is above the field's maximum (e.g. day of week 7).
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum {
        /// Last value of the range.
        end: u64,
        /// The field's maximum.
        max: u64,
        /// The expression.
        expr: String,
    },
    /// `b-a` with `b > a`.
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    Backwards {
        /// First value.
        start: u64,
        /// Last value.
        end: u64,
        /// The expression.
        expr: String,
    },
    /// `*/0`.
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
}

/// Go's `strconv.Atoi` reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AtoiError {
    /// Not an optionally signed run of decimal digits.
    #[error("invalid syntax")]
    Syntax,
    /// Does not fit a 64-bit int.
    #[error("value out of range")]
    Range,
}

/// Go's `time.ParseDuration` errors, with Go's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoDurationError {
    /// Syntax or overflow.
    #[error("time: invalid duration {}", time_quote(.0))]
    Invalid(String),
    /// A number with no unit after it.
    #[error("time: missing unit in duration {}", time_quote(.0))]
    MissingUnit(String),
    /// A unit other than ns, us, µs, μs, ms, s, m, h.
    #[error("time: unknown unit {} in duration {}", time_quote(.unit), time_quote(.text))]
    UnknownUnit {
        /// The unit.
        unit: String,
        /// The whole duration text.
        text: String,
    },
}

/// Why kube-apiserver refuses a CronJob's `spec.schedule` on create.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The schedule is empty (`field.Required`).
    #[error("a schedule is required")]
    Required,
    /// `ParseStandard` refused it (`field.Invalid` with upstream's text).
    #[error(transparent)]
    Syntax(#[from] CronError),
    /// It contains `TZ` anywhere (upstream's `strings.Contains(schedule, "TZ")`).
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    TimeZone,
}

/// Every reason kube-apiserver gives for refusing `schedule` in a new
/// CronJob, in upstream's order (a schedule can fail both the grammar and
/// the `TZ` rule). Empty when the schedule is accepted.
pub fn problems(schedule: &str) -> Vec<ScheduleError> {
    // pkg/apis/batch/validation/validation.go: `len(spec.Schedule) == 0` is
    // Required; otherwise validateScheduleFormat with allowTZInSchedule=false
    // (true only on update of an object that already had a TZ).
    if schedule.is_empty() {
        return vec![ScheduleError::Required];
    }
    let mut out = Vec::new();
    if let Err(e) = parse_standard(schedule) {
        out.push(ScheduleError::Syntax(e));
    }
    if schedule.contains("TZ") {
        out.push(ScheduleError::TimeZone);
    }
    out
}

/// A schedule as kube-apiserver accepts it in a new CronJob: robfig's
/// `ParseStandard` and no `TZ`. The error is the first of [`problems`].
pub fn parse(schedule: &str) -> Result<Schedule, ScheduleError> {
    if let Some(first) = problems(schedule).into_iter().next() {
        return Err(first);
    }
    parse_standard(schedule).map_err(ScheduleError::Syntax)
}

/// robfig/cron v3 `ParseStandard`: five fields (minute, hour, day of month,
/// month, day of week), or a descriptor, optionally after `TZ=`/`CRON_TZ=`.
pub fn parse_standard(spec: &str) -> Result<Schedule, CronError> {
    if spec.is_empty() {
        return Err(CronError::Empty);
    }
    let mut spec = spec;
    let mut location = None;
    // parser.go: `i := strings.Index(spec, " ")`, `eq := strings.Index(spec,
    // "=")`, `time.LoadLocation(spec[eq+1:i])`, then `TrimSpace(spec[i:])`.
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let Some(sp) = spec.find(' ') else {
            let name = &spec[eq + 1..];
            return Err(CronError::BadLocation {
                location: name.to_string(),
                why: format!("unknown time zone {name}"),
            });
        };
        let name = &spec[eq + 1..sp];
        load_location(name).map_err(|why| CronError::BadLocation {
            location: name.to_string(),
            why,
        })?;
        location = Some(name.to_string());
        spec = spec[sp..].trim();
    }
    if spec.starts_with('@') {
        return parse_descriptor(spec, location);
    }
    // `strings.Fields` splits on Unicode white space, as `split_whitespace`.
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(CronError::FieldCount(
            fields.iter().map(|f| f.to_string()).collect(),
        ));
    }
    let mut bits = [0u64; 5];
    for ((text, field), out) in fields.iter().zip(Field::ALL).zip(bits.iter_mut()) {
        *out =
            get_field(text, field.bounds()).map_err(|error| CronError::Field { field, error })?;
    }
    let [minute, hour, day_of_month, month, day_of_week] = bits;
    Ok(Schedule::Spec(Spec {
        minute,
        hour,
        day_of_month,
        month,
        day_of_week,
        location,
    }))
}

/// The syntactic part of Go's `time.LoadLocation`; the zone database itself
/// is not consulted (kube-apiserver refuses `TZ` in schedules anyway).
fn load_location(name: &str) -> Result<(), String> {
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
        return Err("time: invalid location name".into());
    }
    Ok(())
}

fn parse_descriptor(spec: &str, location: Option<String>) -> Result<Schedule, CronError> {
    let all = |f: Field| get_bits(f.min(), f.max(), 1);
    let at = |n: u64| 1u64 << n;
    let spec_of = |minute, hour, dom, month, dow| {
        Schedule::Spec(Spec {
            minute,
            hour,
            day_of_month: dom,
            month,
            day_of_week: dow,
            location: location.clone(),
        })
    };
    use Field::*;
    let fixed = match spec {
        "@yearly" | "@annually" => Some(spec_of(at(0), at(0), at(1), at(1), all(DayOfWeek))),
        "@monthly" => Some(spec_of(at(0), at(0), at(1), all(Month), all(DayOfWeek))),
        "@weekly" => Some(spec_of(at(0), at(0), all(DayOfMonth), all(Month), at(0))),
        "@daily" | "@midnight" => Some(spec_of(
            at(0),
            at(0),
            all(DayOfMonth),
            all(Month),
            all(DayOfWeek),
        )),
        "@hourly" => Some(spec_of(
            at(0),
            all(Hour),
            all(DayOfMonth),
            all(Month),
            all(DayOfWeek),
        )),
        _ => None,
    };
    if let Some(s) = fixed {
        return Ok(s);
    }
    if let Some(text) = spec.strip_prefix("@every ") {
        let nanos = go_parse_duration(text).map_err(|error| CronError::Every {
            descriptor: spec.to_string(),
            error,
        })?;
        // constantdelay.go `Every`: below one second becomes one second, then
        // the sub-second part is dropped.
        let secs = if nanos < 1_000_000_000 {
            1
        } else {
            nanos / 1_000_000_000
        };
        return Ok(Schedule::Every(Duration::from_secs(secs.unsigned_abs())));
    }
    Err(CronError::UnrecognizedDescriptor(spec.to_string()))
}

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
// spec.go: `dow = bounds{0, 6, …}` — 7 for Sunday is refused.
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// parser.go `getField`: `strings.FieldsFunc` on ',' drops empty pieces, so
/// `1,,2` and `,` are accepted.
fn get_field(field: &str, b: &Bounds) -> Result<u64, RangeError> {
    let mut bits = 0;
    for expr in field.split(',').filter(|e| !e.is_empty()) {
        bits |= get_range(expr, b)?;
    }
    Ok(bits)
}

/// parser.go `getRange`, check for check in upstream's order.
fn get_range(expr: &str, b: &Bounds) -> Result<u64, RangeError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let start;
    let mut end;
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = b.min;
        end = b.max;
    } else {
        start = parse_int_or_name(low_and_high[0], b.names)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], b.names)?,
            _ => return Err(RangeError::TooManyHyphens(expr.to_string())),
        };
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = must_parse_int(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single {
                end = b.max;
            }
            step
        }
        _ => return Err(RangeError::TooManySlashes(expr.to_string())),
    };
    if start < b.min {
        return Err(RangeError::BelowMinimum {
            start,
            min: b.min,
            expr: expr.to_string(),
        });
    }
    if end > b.max {
        return Err(RangeError::AboveMaximum {
            end,
            max: b.max,
            expr: expr.to_string(),
        });
    }
    if start > end {
        return Err(RangeError::Backwards {
            start,
            end,
            expr: expr.to_string(),
        });
    }
    if step == 0 {
        return Err(RangeError::ZeroStep(expr.to_string()));
    }
    Ok(get_bits(start, end, step))
}

/// parser.go `getBits`; callers guarantee `max <= 59`.
fn get_bits(min: u64, max: u64, step: u64) -> u64 {
    (min..=max)
        .step_by(usize::try_from(step).unwrap_or(usize::MAX))
        .fold(0, |bits, i| bits | (1u64 << i))
}

/// parser.go `parseIntOrName`: names compare after `strings.ToLower`.
fn parse_int_or_name(expr: &str, names: &[(&str, u64)]) -> Result<u64, RangeError> {
    let lower = expr.to_lowercase();
    if let Some((_, v)) = names.iter().find(|(n, _)| *n == lower) {
        return Ok(*v);
    }
    must_parse_int(expr)
}

/// parser.go `mustParseInt`.
fn must_parse_int(expr: &str) -> Result<u64, RangeError> {
    let n = go_atoi(expr).map_err(|why| RangeError::NotANumber {
        expr: expr.to_string(),
        why,
    })?;
    u64::try_from(n).map_err(|_| RangeError::Negative {
        value: n,
        expr: expr.to_string(),
    })
}

/// Go's `strconv.Atoi` on a 64-bit platform: one optional sign, then
/// decimal digits; the first bad byte is a syntax error, overflow of the
/// unsigned accumulator met before it a range error.
fn go_atoi(s: &str) -> Result<i64, AtoiError> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return Err(AtoiError::Syntax);
    }
    let mut n: u64 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            return Err(AtoiError::Syntax);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(c - b'0')))
            .ok_or(AtoiError::Range)?;
    }
    if neg {
        if n > 1u64 << 63 {
            return Err(AtoiError::Range);
        }
        Ok(0i64.wrapping_sub_unsigned(n))
    } else {
        i64::try_from(n).map_err(|_| AtoiError::Range)
    }
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn go_parse_duration(text: &str) -> Result<i64, GoDurationError> {
    let invalid = || GoDurationError::Invalid(text.to_string());
    const LIMIT: u64 = 1 << 63;
    let mut s = text;
    let mut neg = false;
    if let Some(c) = s.as_bytes().first()
        && (*c == b'-' || *c == b'+')
    {
        neg = *c == b'-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // leadingInt
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let mut v: u64 = 0;
        for c in s[..int_len].bytes() {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        // leadingFraction: stops accumulating precision on overflow.
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for c in rest[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = &rest[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|c| !(*c == b'.' || c.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(GoDurationError::MissingUnit(text.to_string()));
        }
        let unit_text = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u64 = match unit_text {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(GoDurationError::UnknownUnit {
                    unit: unit_text.to_string(),
                    text: text.to_string(),
                });
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Go converts the float product to uint64 (truncating).
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let frac = (f as f64 * (unit as f64 / scale)) as u64;
            v += frac;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        d += v;
        if d > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        return Ok(0i64.wrapping_sub_unsigned(d));
    }
    i64::try_from(d).map_err(|_| invalid())
}

/// Go's `strconv.Quote` for the texts that reach these messages: printable
/// characters as they are, `"` and `\` escaped, the rest as escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `time` package's own `quote`: non-ASCII and control bytes as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        // time/format.go `quote`: `c >= runeSelf || c < ' '` become bytes.
        if (' '..'\u{80}').contains(&c) {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
