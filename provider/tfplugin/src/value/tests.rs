use super::*;
use proptest::prelude::*;

fn obj_type() -> Type {
    Type::object([
        ("name", Type::String),
        ("port", Type::Number),
        ("tags", Type::list(Type::String)),
        ("any", Type::Dynamic),
    ])
}

#[test]
fn type_json_round_trip_and_exact_bytes() {
    assert_eq!(Type::String.to_json(), "\"string\"");
    assert_eq!(
        obj_type().to_json(),
        r#"["object",{"any":"dynamic","name":"string","port":"number","tags":["list","string"]}]"#
    );
    let t = Type::Tuple(vec![Type::Bool, Type::map(Type::set(Type::Number))]);
    assert_eq!(Type::from_json(t.to_json().as_bytes()), Ok(t));
    // A type constraint's optional-attribute list is tolerated.
    assert_eq!(
        Type::from_json(br#"["object",{"a":"string"},["a"]]"#),
        Ok(Type::object([("a", Type::String)]))
    );
    assert!(Type::from_json(br#""strin""#).is_err());
    assert!(Type::from_json(br#"["list"]"#).is_err());
}

#[test]
fn unknown_is_ext0_and_any_extension_decodes_as_unknown() {
    assert_eq!(
        encode_msgpack(&Value::Unknown, &Type::String),
        Ok(vec![0xd4, 0, 0])
    );
    assert_eq!(
        decode_msgpack(&[0xd4, 0, 0], &Type::String),
        Ok(Value::Unknown)
    );
    // Extension 12 (refined unknown) with a map payload {1: false}.
    assert_eq!(
        decode_msgpack(&[0xc7, 3, 12, 0x81, 0x01, 0xc2], &Type::Number),
        Ok(Value::Unknown)
    );
    assert_eq!(
        decode_msgpack(&[0xd5, 7, 1, 2], &Type::list(Type::Bool)),
        Ok(Value::Unknown)
    );
}

#[test]
fn null_and_empty_bytes() {
    assert_eq!(encode_msgpack(&Value::Null, &obj_type()), Ok(vec![0xc0]));
    assert_eq!(decode_msgpack(&[], &obj_type()), Ok(Value::Null));
    assert_eq!(decode_msgpack(&[0xc0], &Type::Bool), Ok(Value::Null));
}

#[test]
fn numbers_decode_from_every_wire_form() {
    let n = |bytes: &[u8]| decode_msgpack(bytes, &Type::Number).expect("decodes");
    assert_eq!(n(&[0x05]), Value::int(5));
    assert_eq!(n(&[0xd0, 0xfb]), Value::int(-5));
    assert_eq!(n(&[0xcd, 0x0c, 0xea]), Value::int(3306));
    // uint64 max does not fit i64: kept exactly as decimal text.
    let big = n(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert_eq!(
        big,
        Value::Number(Number::Decimal("18446744073709551615".into()))
    );
    let mut f64bytes = vec![0xcb];
    f64bytes.extend_from_slice(&1.5f64.to_be_bytes());
    assert_eq!(n(&f64bytes), Value::Number(Number::Float(1.5)));
    let mut f32bytes = vec![0xca];
    f32bytes.extend_from_slice(&0.25f32.to_be_bytes());
    assert_eq!(n(&f32bytes), Value::Number(Number::Float(0.25)));
    // Decimal text as cty writes numbers that are neither int64 nor float64.
    let mut s = vec![0xa3];
    s.extend_from_slice(b"0.1");
    assert_eq!(n(&s), Value::Number(Number::Decimal("0.1".into())));
    assert!(decode_msgpack(&[0xa1, b'x'], &Type::Number).is_err());
}

#[test]
fn numbers_encode_compactly() {
    assert_eq!(
        encode_msgpack(&Value::int(1), &Type::Number),
        Ok(vec![0x01])
    );
    assert_eq!(
        encode_msgpack(&Value::int(-1), &Type::Number),
        Ok(vec![0xff])
    );
    assert_eq!(
        encode_msgpack(&Value::int(65535), &Type::Number),
        Ok(vec![0xcd, 0xff, 0xff])
    );
    let f = encode_msgpack(&Value::Number(Number::Float(2.5)), &Type::Number).expect("enc");
    assert_eq!(f[0], 0xcb);
    let d = encode_msgpack(
        &Value::Number(Number::Decimal("1e400".into())),
        &Type::Number,
    )
    .expect("enc");
    assert_eq!(&d[1..], b"1e400");
}

#[test]
fn objects_need_every_attribute() {
    let t = Type::object([("a", Type::String), ("b", Type::Bool)]);
    // {"a": "x"} lacks "b".
    let err = decode_msgpack(&[0x81, 0xa1, b'a', 0xa1, b'x'], &t).expect_err("missing b");
    assert!(
        err.message.contains("2 attributes is required (1 given)"),
        "{err}"
    );
    // {"c": nil} is not an attribute.
    let err = decode_msgpack(&[0x81, 0xa1, b'c', 0xc0], &t).expect_err("unknown attr");
    assert!(err.message.contains("unsupported attribute"), "{err}");
    // Encoding fills in missing attributes as null, in sorted key order.
    let bytes = encode_msgpack(&Value::object([("b", Value::Bool(true))]), &t).expect("enc");
    assert_eq!(bytes, vec![0x82, 0xa1, b'a', 0xc0, 0xa1, b'b', 0xc3]);
    let extra = Value::object([("zzz", Value::Null)]);
    assert!(encode_msgpack(&extra, &t).is_err());
}

#[test]
fn dynamic_values_are_type_value_pairs() {
    let v = Value::Dynamic(Type::String, Box::new(Value::string("hi")));
    let bytes = encode_msgpack(&v, &Type::Dynamic).expect("enc");
    // [bin "\"string\"", "hi"]
    let mut want = vec![0x92, 0xc4, 8];
    want.extend_from_slice(b"\"string\"");
    want.extend_from_slice(&[0xa2, b'h', b'i']);
    assert_eq!(bytes, want);
    assert_eq!(decode_msgpack(&bytes, &Type::Dynamic), Ok(v));
    // The type may also arrive as str.
    let mut as_str = vec![0x92, 0xa6];
    as_str.extend_from_slice(b"\"bool\"");
    as_str.push(0xc3);
    assert_eq!(
        decode_msgpack(&as_str, &Type::Dynamic),
        Ok(Value::Dynamic(Type::Bool, Box::new(Value::Bool(true))))
    );
    // A bare value in a dynamic position gets its inferred type.
    let bytes = encode_msgpack(&Value::int(3), &Type::Dynamic).expect("enc");
    assert_eq!(
        decode_msgpack(&bytes, &Type::Dynamic),
        Ok(Value::Dynamic(Type::Number, Box::new(Value::int(3))))
    );
    assert_eq!(
        decode_msgpack(&[0xd4, 0, 0], &Type::Dynamic),
        Ok(Value::Unknown)
    );
}

#[test]
fn type_mismatches_are_errors_with_paths() {
    let t = obj_type();
    let v = Value::object([("port", Value::string("x"))]);
    let err = encode_msgpack(&v, &t).expect_err("mismatch");
    assert_eq!(err.path.to_string(), ".port");
    // Nested steps, in each walker: attribute, list index, map key.
    let nested = Type::object([("objects", Type::list(Type::map(Type::Number)))]);
    let v = Value::object([(
        "objects",
        Value::List(vec![
            Value::Map([("a".to_string(), Value::int(1))].into()),
            Value::Map([("b c".to_string(), Value::string("x"))].into()),
        ]),
    )]);
    let err = encode_msgpack(&v, &nested).expect_err("mismatch");
    assert_eq!(err.path.to_string(), r#".objects[1]["b c"]"#);
    let err = encode_json(&v, &nested).expect_err("mismatch");
    assert_eq!(err.path.to_string(), r#".objects[1]["b c"]"#);
    let as_strings = Type::object([("objects", Type::list(Type::map(Type::String)))]);
    let strings = Value::object([(
        "objects",
        Value::List(vec![
            Value::Map([("a".to_string(), Value::string("1"))].into()),
            Value::Map([("b c".to_string(), Value::string("x"))].into()),
        ]),
    )]);
    let bytes = encode_msgpack(&strings, &as_strings).expect("strings encode");
    let err = decode_msgpack(&bytes, &nested).expect_err("mismatch");
    assert_eq!(err.path.to_string(), r#".objects[1]["b c"]"#);
    let json = br#"{"objects":[{"a":1},{"b c":"x"}]}"#;
    let err = decode_json(json, &nested, JsonOptions::default()).expect_err("mismatch");
    assert_eq!(err.path.to_string(), r#".objects[1]["b c"]"#);
    assert!(decode_msgpack(&[0xc3], &Type::String).is_err());
    assert!(
        decode_msgpack(&[0x93, 1, 2], &Type::list(Type::Number)).is_err(),
        "truncated"
    );
    assert!(
        decode_msgpack(&[0xc3, 0xc3], &Type::Bool).is_err(),
        "trailing bytes"
    );
}

#[test]
fn sets_compare_unordered() {
    let a = Value::Set(vec![Value::int(1), Value::int(2)]);
    let b = Value::Set(vec![Value::int(2), Value::int(1)]);
    assert_eq!(a, b);
    assert_ne!(a, Value::Set(vec![Value::int(1), Value::int(1)]));
    assert_ne!(a, Value::List(vec![Value::int(1), Value::int(2)]));
}

#[test]
fn json_state_decodes_with_missing_and_removed_attributes() {
    let t = obj_type();
    let json = br#"{
        "name": "x",
        "port": 123456789012345678901234567890,
        "removed_long_ago": 1,
        "any": {"value": ["a", 1], "type": ["tuple", ["string", "number"]]}
    }"#;
    let v = decode_json(
        json,
        &t,
        JsonOptions {
            ignore_unknown_attributes: true,
        },
    )
    .expect("dec");
    assert_eq!(v.get_attr("name"), Some(&Value::string("x")));
    assert_eq!(
        v.get_attr("port"),
        Some(&Value::Number(Number::Decimal(
            "123456789012345678901234567890".into()
        )))
    );
    assert_eq!(v.get_attr("tags"), Some(&Value::Null));
    assert_eq!(
        v.get_attr("any"),
        Some(&Value::Dynamic(
            Type::Tuple(vec![Type::String, Type::Number]),
            Box::new(Value::Tuple(vec![Value::string("a"), Value::int(1)]))
        ))
    );
    let strict = decode_json(json, &t, JsonOptions::default()).expect_err("strict");
    assert!(strict.message.contains("removed_long_ago"));
    // The big number survives msgpack exactly.
    let bytes = encode_msgpack(&v, &t).expect("enc");
    assert_eq!(decode_msgpack(&bytes, &t), Ok(v));
}

// ---- property tests -------------------------------------------------------

fn arb_type() -> impl Strategy<Value = Type> {
    let leaf = prop_oneof![
        Just(Type::Bool),
        Just(Type::Number),
        Just(Type::String),
        Just(Type::Dynamic),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(Type::list),
            inner.clone().prop_map(Type::set),
            inner.clone().prop_map(Type::map),
            proptest::collection::btree_map("[a-z_]{1,6}", inner.clone(), 0..4)
                .prop_map(Type::Object),
            proptest::collection::vec(inner, 0..3).prop_map(Type::Tuple),
        ]
    })
}

fn arb_number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::Int),
        (-1e12f64..1e12f64)
            .prop_filter("non-integral", |f| f.fract() != 0.0)
            .prop_map(Number::Float),
        "[1-9][0-9]{19,30}".prop_map(Number::Decimal),
        "-?[0-9]{1,3}\\.[0-9]{1,20}[1-9]".prop_map(Number::Decimal),
    ]
}

/// A known value of concrete (non-dynamic) type `ty`, with nulls and unknowns inside.
fn arb_value(ty: Type, depth: u32) -> BoxedStrategy<Value> {
    let known: BoxedStrategy<Value> = match ty.clone() {
        Type::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Type::Number => arb_number().prop_map(Value::Number).boxed(),
        Type::String => ".{0,12}".prop_map(Value::String).boxed(),
        Type::List(e) => proptest::collection::vec(arb_value(*e, depth + 1), 0..3)
            .prop_map(Value::List)
            .boxed(),
        Type::Set(e) => proptest::collection::vec(arb_value(*e, depth + 1), 0..3)
            .prop_map(Value::Set)
            .boxed(),
        Type::Map(e) => proptest::collection::btree_map(".{0,5}", arb_value(*e, depth + 1), 0..3)
            .prop_map(Value::Map)
            .boxed(),
        Type::Object(attrs) => {
            let parts: Vec<BoxedStrategy<(String, Value)>> = attrs
                .into_iter()
                .map(|(k, t)| {
                    arb_value(t, depth + 1)
                        .prop_map(move |v| (k.clone(), v))
                        .boxed()
                })
                .collect();
            parts
                .prop_map(|kv| Value::Object(kv.into_iter().collect()))
                .boxed()
        }
        Type::Tuple(types) => {
            let parts: Vec<BoxedStrategy<Value>> =
                types.into_iter().map(|t| arb_value(t, depth + 1)).collect();
            parts.prop_map(Value::Tuple).boxed()
        }
        Type::Dynamic => arb_type()
            .prop_filter("concrete", |t| *t != Type::Dynamic)
            .prop_flat_map(move |t| {
                arb_value(t.clone(), depth + 1)
                    .prop_map(move |v| Value::Dynamic(t.clone(), Box::new(v)))
            })
            .boxed(),
    };
    if depth > 4 {
        return prop_oneof![Just(Value::Null), Just(Value::Unknown)].boxed();
    }
    prop_oneof![
        1 => Just(Value::Null),
        1 => Just(Value::Unknown),
        6 => known,
    ]
    .boxed()
}

fn strip_unknowns(v: Value) -> Value {
    match v {
        Value::Unknown => Value::Null,
        Value::List(x) => Value::List(x.into_iter().map(strip_unknowns).collect()),
        Value::Set(x) => Value::Set(x.into_iter().map(strip_unknowns).collect()),
        Value::Tuple(x) => Value::Tuple(x.into_iter().map(strip_unknowns).collect()),
        Value::Map(m) => Value::Map(m.into_iter().map(|(k, v)| (k, strip_unknowns(v))).collect()),
        Value::Object(m) => {
            Value::Object(m.into_iter().map(|(k, v)| (k, strip_unknowns(v))).collect())
        }
        Value::Dynamic(t, v) => Value::Dynamic(t, Box::new(strip_unknowns(*v))),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn msgpack_round_trips((ty, v) in arb_type().prop_flat_map(|t| (Just(t.clone()), arb_value(t, 0)))) {
        let bytes = encode_msgpack(&v, &ty).expect("encodes");
        let back = decode_msgpack(&bytes, &ty).expect("decodes");
        prop_assert_eq!(&back, &v);
        // Re-encoding is stable byte for byte.
        prop_assert_eq!(encode_msgpack(&back, &ty).expect("re-encodes"), bytes);
    }

    #[test]
    fn json_round_trips((ty, v) in arb_type().prop_flat_map(|t| (Just(t.clone()), arb_value(t, 0)))) {
        let v = strip_unknowns(v);
        let text = encode_json(&v, &ty).expect("encodes");
        let back = decode_json(text.as_bytes(), &ty, JsonOptions::default()).expect("decodes");
        prop_assert_eq!(back, v);
    }

    #[test]
    fn type_json_round_trips(ty in arb_type()) {
        prop_assert_eq!(Type::from_json(ty.to_json().as_bytes()), Ok(ty));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), ty in arb_type()) {
        let _ = decode_msgpack(&bytes, &ty);
        let _ = decode_json(&bytes, &ty, JsonOptions::default());
    }
}
