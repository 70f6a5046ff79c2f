//! AAC in FLV: `0xAF` (AAC, 44 kHz flag, 16-bit, stereo: FLV's fixed values for AAC) then
//! packet type 0 + AudioSpecificConfig, or 1 + one raw access unit.

use bytes::{BufMut, Bytes, BytesMut};

const AAC_HEADER: u8 = 0xaf;

/// The sequence header tag body from the encoder's AudioSpecificConfig.
pub fn sequence_header(audio_specific_config: &[u8]) -> Bytes {
    body(0, audio_specific_config)
}

/// The tag body of one raw AAC frame.
pub fn frame(raw: &[u8]) -> Bytes {
    body(1, raw)
}

fn body(packet_type: u8, data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(2 + data.len());
    out.put_u8(AAC_HEADER);
    out.put_u8(packet_type);
    out.put_slice(data);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_config_and_frames() {
        assert_eq!(&sequence_header(&[0x12, 0x10])[..], &[0xaf, 0, 0x12, 0x10]);
        assert_eq!(&frame(&[1, 2, 3])[..], &[0xaf, 1, 1, 2, 3]);
    }
}
