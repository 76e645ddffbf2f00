//! Envoy resources in Envoy's own JSON form (the proto3 JSON mapping, typed
//! configs unpacked with `@type`), using the Envoy descriptors compiled by
//! `build.rs` from the protos shipped in `envoy-types`.

use std::sync::LazyLock;

use prost::{Message, Name};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(&include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"))[..])
        .map_err(|e| format!("Envoy descriptors do not load: {e}"))
});

/// Serializes an Envoy message to JSON exactly as Envoy reads it.
pub fn to_json<M: Message + Name>(message: &M) -> Result<serde_json::Value, String> {
    encoded_to_json(&M::full_name(), &message.encode_to_vec())
}

/// The same for an encoded message of the named type
/// (e.g. `envoy.config.listener.v3.Listener`).
pub fn encoded_to_json(full_name: &str, body: &[u8]) -> Result<serde_json::Value, String> {
    let pool = POOL.as_ref().map_err(Clone::clone)?;
    let descriptor = pool
        .get_message_by_name(full_name)
        .ok_or_else(|| format!("no descriptor for {full_name}"))?;
    let dynamic =
        DynamicMessage::decode(descriptor, body).map_err(|e| format!("{full_name}: {e}"))?;
    let options = SerializeOptions::new()
        .stringify_64_bit_integers(false)
        .use_proto_field_name(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| format!("{full_name}: {e}"))
}
