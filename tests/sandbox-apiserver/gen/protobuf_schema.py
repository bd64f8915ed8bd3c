#!/usr/bin/env python3
"""Generates src/protobuf/schema.rs: the field numbers of the Kubernetes
protobuf messages the sandbox decodes, for every message reachable from the
kinds it serves.

Field numbers and wire kinds come from k8s-pb 0.8.0 (kube-rs's prost build of
k8s.io/api's generated.proto); JSON names from k8s-openapi 0.29 (v1_33), whose
serde code spells every field's JSON name. Both are read from the local cargo
registry: run `cargo fetch` in a project depending on them first.

    python3 tests/sandbox-apiserver/gen/protobuf_schema.py > tests/sandbox-apiserver/src/protobuf/schema.rs && cargo fmt --all
"""
import glob
import os
import re
import sys

REG = glob.glob(os.path.expanduser("~/.cargo/registry/src/*/"))
PB = next(g for r in REG for g in glob.glob(r + "k8s-pb-0.8.0"))
OA = next(g for r in REG for g in glob.glob(r + "k8s-openapi-0.29.0")) + "/src/v1_33"

ROOTS = [
    "api::core::v1::Namespace",
    "api::core::v1::ConfigMap",
    "api::core::v1::Secret",
    "api::batch::v1::CronJob",
    "api::apps::v1::Deployment",
]

# Messages with a JSON form of their own (apimachinery's custom marshalling).
SPECIAL = {
    "apimachinery::pkg::apis::meta::v1::Time": "Time",
    "apimachinery::pkg::apis::meta::v1::MicroTime": "Time",
    "apimachinery::pkg::util::intstr::IntOrString": "IntOrString",
    "apimachinery::pkg::api::resource::Quantity": "Quantity",
    "apimachinery::pkg::apis::meta::v1::Duration": "GoDuration",
    "apimachinery::pkg::runtime::RawExtension": "RawJson",
    "apimachinery::pkg::apis::meta::v1::FieldsV1": "RawJson",
}

# Go fields that are NOT pointers, among the int/bool fields of these
# messages: their zero value is Go's "unset" and `omitempty` drops it from
# JSON, so the decoder drops it too. Every other int/bool is a pointer in Go
# (`*int32`, `*bool`), protobuf writes it only when set, and 0/false is kept.
NON_POINTER = {
    ("ObjectMeta", "generation"),
    ("DeploymentSpec", "minReadySeconds"),
    ("DeploymentSpec", "paused"),
    ("Container", "stdin"), ("Container", "stdinOnce"), ("Container", "tty"),
    ("EphemeralContainerCommon", "stdin"), ("EphemeralContainerCommon", "stdinOnce"),
    ("EphemeralContainerCommon", "tty"),
    ("ContainerPort", "hostPort"),
    ("Probe", "initialDelaySeconds"), ("Probe", "timeoutSeconds"),
    ("Probe", "periodSeconds"), ("Probe", "successThreshold"),
    ("Probe", "failureThreshold"),
    ("PodSpec", "hostNetwork"), ("PodSpec", "hostPID"), ("PodSpec", "hostIPC"),
    ("VolumeMount", "readOnly"),
    ("WeightedPodAffinityTerm", "weight"), ("PreferredSchedulingTerm", "weight"),
    ("DeploymentStatus", "observedGeneration"), ("DeploymentStatus", "replicas"),
    ("DeploymentStatus", "updatedReplicas"), ("DeploymentStatus", "readyReplicas"),
    ("DeploymentStatus", "availableReplicas"), ("DeploymentStatus", "unavailableReplicas"),
    ("AwsElasticBlockStoreVolumeSource", "partition"),
    ("AwsElasticBlockStoreVolumeSource", "readOnly"),
    ("GcePersistentDiskVolumeSource", "partition"),
    ("GcePersistentDiskVolumeSource", "readOnly"),
    ("AzureFileVolumeSource", "readOnly"), ("CephFsVolumeSource", "readOnly"),
    ("CinderVolumeSource", "readOnly"), ("FcVolumeSource", "readOnly"),
    ("FlexVolumeSource", "readOnly"), ("GlusterfsVolumeSource", "readOnly"),
    ("IscsiVolumeSource", "readOnly"), ("IscsiVolumeSource", "chapAuthDiscovery"),
    ("IscsiVolumeSource", "chapAuthSession"), ("NfsVolumeSource", "readOnly"),
    ("PortworxVolumeSource", "readOnly"), ("QuobyteVolumeSource", "readOnly"),
    ("RbdVolumeSource", "readOnly"), ("ScaleIoVolumeSource", "sslEnabled"),
    ("ScaleIoVolumeSource", "readOnly"), ("StorageOsVolumeSource", "readOnly"),
}

# Go structs embedded with `json:",inline"`: a nested message in protobuf,
# flattened into the embedding object in JSON (k8s-openapi spells their
# fields in the embedding type).
EMBEDDED = {
    "api::core::v1::VolumeSource": "api::core::v1::Volume",
    "api::core::v1::ProbeHandler": "api::core::v1::Probe",
    "api::core::v1::EphemeralContainerCommon": "api::core::v1::EphemeralContainer",
}

def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()

def module_file(mod):
    return os.path.join(PB, "src", *mod.split("::"), "mod.rs")

FIELD_RE = re.compile(
    r'#\[prost\(([^\]]*?)tag\s*=\s*"(\d+)"[^\]]*\)\]\s*pub\s+(r#)?(\w+)\s*:\s*([^;]*?),\s*\n\s*(?=(?:///|#\[|pub\s|\}))',
    re.S,
)

_cache = {}

def structs_of(mod):
    if mod not in _cache:
        text = open(module_file(mod)).read()
        out = {}
        for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
            body = m.group(2) + "\n}"
            out[m.group(1)] = [
                (int(f.group(2)), f.group(1).strip().rstrip(","), f.group(4), f.group(5))
                for f in FIELD_RE.finditer(body)
            ]
        _cache[mod] = out
    return _cache[mod]

def resolve(mod, ty):
    ty = re.sub(r"\s+", "", ty).rstrip(",")
    inner = ty
    for wrap in ("::core::option::Option<", "::prost::alloc::vec::Vec<"):
        if inner.startswith(wrap):
            inner = inner[len(wrap):-1]
    if "BTreeMap<" in inner:
        inner = inner.split(",", 1)[1].rstrip(">").rstrip(",")
    parts = inner.split("::")
    base = mod.split("::")
    while parts and parts[0] == "super":
        base.pop()
        parts.pop(0)
    return "::".join(base + parts)

def json_names(full):
    full = EMBEDDED.get(full, full)
    mod, name = full.rsplit("::", 1)
    path = os.path.join(OA, *mod.split("::"), snake(name) + ".rs")
    names = {}
    if os.path.exists(path):
        for m in re.finditer(r'"([\w$-]+)"\s*=>\s*Field::Key_(\w+)', open(path).read()):
            names[m.group(2)] = m.group(1)
    else:
        print(f"warning: no k8s-openapi file for {full}", file=sys.stderr)
    return names

def camel(s):
    p = s.split("_")
    return p[0] + "".join(x[:1].upper() + x[1:] for x in p[1:])

def const_name(full):
    mod, name = full.rsplit("::", 1)
    tail = [p for p in mod.split("::") if p not in ("api", "apimachinery", "pkg", "apis")]
    return ("_".join(tail) + "_" + snake(name)).upper()

def kind_of(mod, attr, ty, rust, msg_name, json):
    a = attr.replace(" ", "")
    if a.startswith("btree_map="):
        v = a.split(",")[1].rstrip('"')
        if v == "string":
            return "Kind::MapStr", None
        if v == "bytes":
            return "Kind::MapBytes", None
        target = resolve(mod, ty)
        return f"Kind::MapMsg(&{const_name(target)})", target
    scalar, _, label = a.partition(",")
    repeated = label.startswith("repeated")
    if scalar == "message":
        target = resolve(mod, ty)
        k = f"Kind::Msg(&{const_name(target)})"
        if target in EMBEDDED:
            k = f"Kind::Inline(&{const_name(target)})"
        if repeated:
            k = f"Kind::List(&{const_name(target)})"
        return k, target
    base = {
        "string": "Str", "bool": "Bool", "int32": "Int", "int64": "Int",
        'bytes="vec"': "Bytes", "double": "Float",
    }[scalar]
    if repeated:
        return {"Str": "Kind::StrList", "Int": "Kind::IntList"}[base], None
    if base in ("Int", "Bool") and (msg_name, json) in NON_POINTER:
        return f"Kind::{base}OmitZero", None
    return f"Kind::{base}", None

def main():
    todo = list(ROOTS)
    seen = {}
    while todo:
        full = todo.pop()
        if full in seen:
            continue
        mod, name = full.rsplit("::", 1)
        if full in SPECIAL:
            seen[full] = None
            continue
        fields = structs_of(mod).get(name)
        if fields is None:
            sys.exit(f"no struct {full}")
        names = json_names(full)
        rows = []
        for tag, attr, rust, ty in fields:
            json = names.get(rust) or camel(rust)
            k, target = kind_of(mod, attr, ty, rust, name, json)
            if target:
                if target in SPECIAL:
                    special = SPECIAL[target]
                    if k.startswith("Kind::Msg"):
                        k = f"Kind::{special}"
                    elif k.startswith("Kind::MapMsg") and special == "Quantity":
                        k = "Kind::MapQuantity"
                    elif k.startswith("Kind::List") and special == "RawJson":
                        k = "Kind::RawJsonList"
                    else:
                        sys.exit(f"unhandled special {k} {target} in {full}")
                else:
                    todo.append(target)
            rows.append((tag, json, k))
        seen[full] = rows
    print("// @generated by tests/sandbox-apiserver/gen/protobuf_schema.py from k8s-pb 0.8.0")
    print("// (field numbers of k8s.io/api generated.proto) and k8s-openapi 0.29 (JSON names).")
    print("// Do not edit by hand.")
    print()
    print("use super::{Field, Kind};")
    for full in sorted(seen):
        rows = seen[full]
        if rows is None:
            continue
        print()
        print(f"/// `{full.replace('::', '.')}`")
        print(f"pub(super) static {const_name(full)}: &[Field] = &[")
        for tag, json, k in sorted(rows):
            print(f'    ({tag}, "{json}", {k}),')
        print("];")

main()
