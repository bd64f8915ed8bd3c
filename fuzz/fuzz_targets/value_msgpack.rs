//! The provider's msgpack value decoder never panics on what Terraform (or
//! anything else) sends, and what it accepts round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tfplugin::value::{Type, decode_msgpack, encode_msgpack};

fn types() -> Vec<Type> {
    vec![
        Type::String,
        Type::Number,
        Type::Bool,
        Type::Dynamic,
        Type::list(Type::String),
        Type::set(Type::Number),
        Type::map(Type::Bool),
        Type::object([
            ("name", Type::String),
            ("port", Type::Number),
            ("tags", Type::list(Type::String)),
            ("dolt", Type::list(Type::object([("host", Type::String), ("tls", Type::Bool)]))),
            ("any", Type::Dynamic),
        ]),
        Type::Tuple(vec![Type::String, Type::Number, Type::Dynamic]),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let types = types();
    let ty = &types[usize::from(selector) % types.len()];
    if let Ok(value) = decode_msgpack(bytes, ty) {
        let encoded = encode_msgpack(&value, ty).expect("a decoded value encodes");
        let again = decode_msgpack(&encoded, ty).expect("own encoding decodes");
        assert_eq!(value, again);
    }
});
