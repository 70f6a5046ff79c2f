//! Annex-B byte streams (NAL units behind 00 00 01 / 00 00 00 01 start codes), as encoders
//! emit them, and their conversion to the 4-byte length prefixes FLV requires.

use bytes::{BufMut, BytesMut};

/// Iterates over the NAL units of an Annex-B buffer (start codes removed, empty units skipped).
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || loop {
        let start = find_start_code(rest)?;
        let after = &rest[start.0 + start.1..];
        let end = find_start_code(after).map_or(after.len(), |(pos, _)| pos);
        let mut unit = &after[..end];
        rest = &after[end..];
        // A 4-byte start code's leading zero belongs to the start code, not the unit before.
        while let [head @ .., 0] = unit {
            unit = head;
        }
        if !unit.is_empty() {
            return Some(unit);
        }
        if rest.is_empty() {
            return None;
        }
    })
}

/// Finds the first 00 00 01 start code: (position, length 3).
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    data.windows(3)
        .position(|w| w == [0, 0, 1])
        .map(|pos| (pos, 3))
}

/// Converts Annex-B to length-prefixed NAL units (AVCC/HVCC style), appending to `out`.
///
/// Input without any start code is taken to be length-prefixed already and copied as is.
pub fn to_length_prefixed(data: &[u8], out: &mut BytesMut) {
    if find_start_code(data).is_none() {
        out.put_slice(data);
        return;
    }
    for unit in nal_units(data) {
        out.put_u32(unit.len() as u32);
        out.put_slice(unit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 0,
        ];
        let units: Vec<_> = nal_units(&data).collect();
        assert_eq!(units, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4]]);
    }

    #[test]
    fn converts_start_codes_to_lengths() {
        let mut out = BytesMut::new();
        to_length_prefixed(&[0, 0, 0, 1, 0x65, 7, 7, 0, 0, 1, 0x41, 9], &mut out);
        assert_eq!(&out[..], &[0, 0, 0, 3, 0x65, 7, 7, 0, 0, 0, 2, 0x41, 9]);
    }
}
