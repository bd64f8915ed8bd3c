//! Compiles `proto/tfplugin6.proto` and `proto/grpc_controller.proto` with
//! tonic-prost-build, using the protoc shipped by `protoc-bin-vendored` so
//! that nobody needs a system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest.join("../../proto");
    let protos = [
        proto_dir.join("tfplugin6.proto"),
        proto_dir.join("grpc_controller.proto"),
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={}", p.display());
    }

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_with_config(config, &protos, &[proto_dir])?;
    Ok(())
}
