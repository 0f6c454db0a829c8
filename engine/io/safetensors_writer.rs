//! Writes a safetensors file byte for byte the same for the same contents: the `safetensors`
//! crate's writer keeps the metadata in a `HashMap`, so two saves of one state differed in
//! the header's key order (and a checksum of a saved model meant nothing). Here the
//! metadata and the tensors go in name order. The layout is the format's: an 8-byte
//! little-endian header length, the JSON header padded with spaces to a multiple of 8, then
//! each tensor's little-endian data, contiguous, in the header's order. The crate reads it.

use ndarray::ArrayD;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The file's bytes: `metadata` under `__metadata__`, every tensor as F32.
pub fn serialize(metadata: &BTreeMap<String, String>, tensors: &BTreeMap<String, ArrayD<f32>>) -> Vec<u8> {
    let mut header = Map::new();
    let meta: Map<String, Value> = metadata.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    header.insert("__metadata__".into(), Value::Object(meta));
    let mut offset = 0usize;
    for (name, t) in tensors {
        let end = offset + t.len() * 4;
        header.insert(
            name.clone(),
            json!({"dtype": "F32", "shape": t.shape(), "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = Value::Object(header).to_string().into_bytes();
    // Tensors start 8-aligned, as the crate's writer aligns them.
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + text.len() + offset);
    bytes.extend((text.len() as u64).to_le_bytes());
    bytes.extend(text);
    for t in tensors.values() {
        bytes.extend(t.iter().flat_map(|v| v.to_le_bytes()));
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_reads_what_is_written_and_the_same_contents_give_the_same_bytes() {
        let metadata: BTreeMap<String, String> = (0..20).map(|i| (format!("key{i}"), format!("value {i}"))).collect();
        let tensors: BTreeMap<String, ArrayD<f32>> = [
            (
                "b".to_string(),
                ArrayD::from_shape_vec(vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, -0.0, 7.0]).unwrap(),
            ),
            ("a".to_string(), ArrayD::from_elem(vec![], 4.25)),
            ("c".to_string(), ArrayD::zeros(vec![0, 3])),
        ]
        .into_iter()
        .collect();
        let bytes = serialize(&metadata, &tensors);
        assert_eq!(bytes, serialize(&metadata.clone(), &tensors.clone()));
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        for (name, t) in &tensors {
            let view = st.tensor(name).unwrap();
            assert_eq!(view.shape(), t.shape());
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            assert_eq!(
                values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                t.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
            );
        }
        let (_, read) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let read: BTreeMap<String, String> = read.metadata().clone().unwrap().into_iter().collect();
        assert_eq!(read, metadata);
    }
}
