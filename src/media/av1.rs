//! AV1: the AV1CodecConfigurationRecord (`av1C`) built from the sequence header OBU.

use bytes::{BufMut, Bytes, BytesMut};

use super::bits::BitReader;
use super::MediaError;

const OBU_SEQUENCE_HEADER: u8 = 1;

/// The `av1C` fields taken from the sequence header.
#[derive(Debug, Default, PartialEq, Eq)]
struct SequenceInfo {
    profile: u8,
    level: u8,
    tier: bool,
    high_bitdepth: bool,
    twelve_bit: bool,
    monochrome: bool,
    subsampling_x: bool,
    subsampling_y: bool,
    chroma_sample_position: u8,
}

/// Finds the sequence header OBU in a low-overhead OBU stream: (whole OBU, payload).
fn find_sequence_header(mut data: &[u8]) -> Result<(&[u8], &[u8]), MediaError> {
    while !data.is_empty() {
        let header = data[0];
        let extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let mut pos = 1 + usize::from(extension);
        let size = if has_size {
            let (size, len) = leb128(data.get(pos..).unwrap_or_default())?;
            pos += len;
            size
        } else {
            data.len().saturating_sub(pos)
        };
        let end = pos
            .checked_add(size)
            .filter(|end| *end <= data.len())
            .ok_or(MediaError::Truncated("AV1 OBU"))?;
        if header >> 3 & 0x0f == OBU_SEQUENCE_HEADER {
            return Ok((&data[..end], &data[pos..end]));
        }
        data = &data[end..];
    }
    Err(MediaError::Missing("AV1 sequence header OBU"))
}

fn leb128(data: &[u8]) -> Result<(usize, usize), MediaError> {
    let mut value = 0usize;
    for (i, byte) in data.iter().take(8).enumerate() {
        value |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(MediaError::Truncated("AV1 OBU size"))
}

fn parse_sequence_header(payload: &[u8]) -> Result<SequenceInfo, MediaError> {
    let mut r = BitReader::new(payload);
    let mut info = SequenceInfo {
        profile: r.bits(3)? as u8,
        ..SequenceInfo::default()
    };
    r.bit()?; // still_picture
    let reduced = r.bit()?;
    if reduced {
        info.level = r.bits(5)? as u8;
    } else {
        let timing_info = r.bit()?;
        let mut decoder_model_info = false;
        let mut buffer_delay_length = 0;
        if timing_info {
            r.skip(64)?; // num_units_in_display_tick, time_scale
            if r.bit()? {
                r.uvlc()?; // num_ticks_per_picture_minus_1
            }
            decoder_model_info = r.bit()?;
            if decoder_model_info {
                buffer_delay_length = r.bits(5)? as usize + 1;
                r.skip(32 + 5 + 5)?;
            }
        }
        let initial_display_delay = r.bit()?;
        let operating_points = r.bits(5)? + 1;
        for i in 0..operating_points {
            r.skip(12)?; // operating_point_idc
            let level = r.bits(5)? as u8;
            let tier = level > 7 && r.bit()?;
            if i == 0 {
                info.level = level;
                info.tier = tier;
            }
            if decoder_model_info && r.bit()? {
                r.skip(2 * buffer_delay_length + 1)?;
            }
            if initial_display_delay && r.bit()? {
                r.skip(4)?;
            }
        }
    }
    let width_bits = r.bits(4)? as usize + 1;
    let height_bits = r.bits(4)? as usize + 1;
    r.skip(width_bits + height_bits)?;
    if !reduced && r.bit()? {
        r.skip(4 + 3)?; // frame id lengths
    }
    r.skip(3)?; // 128x128 superblock, filter intra, intra edge filter
    if !reduced {
        r.skip(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = r.bit()?;
        if order_hint {
            r.skip(2)?; // jnt_comp, ref_frame_mvs
        }
        let force_screen_content_tools = if r.bit()? { 2 } else { r.bits(1)? };
        if force_screen_content_tools > 0 && !r.bit()? {
            r.skip(1)?; // seq_force_integer_mv
        }
        if order_hint {
            r.skip(3)?;
        }
    }
    r.skip(3)?; // superres, cdef, restoration
    read_color_config(&mut r, &mut info)?;
    Ok(info)
}

fn read_color_config(r: &mut BitReader<'_>, info: &mut SequenceInfo) -> Result<(), MediaError> {
    info.high_bitdepth = r.bit()?;
    if info.profile == 2 && info.high_bitdepth {
        info.twelve_bit = r.bit()?;
    }
    info.monochrome = info.profile != 1 && r.bit()?;
    let (mut primaries, mut transfer, mut matrix) = (2, 2, 2);
    if r.bit()? {
        primaries = r.bits(8)?;
        transfer = r.bits(8)?;
        matrix = r.bits(8)?;
    }
    if info.monochrome {
        (info.subsampling_x, info.subsampling_y) = (true, true);
        return Ok(());
    }
    if primaries == 1 && transfer == 13 && matrix == 0 {
        return Ok(()); // sRGB: 4:4:4
    }
    r.bit()?; // color_range
    (info.subsampling_x, info.subsampling_y) = match info.profile {
        0 => (true, true),
        1 => (false, false),
        _ if info.twelve_bit => {
            let x = r.bit()?;
            (x, x && r.bit()?)
        }
        _ => (true, false),
    };
    if info.subsampling_x && info.subsampling_y {
        info.chroma_sample_position = r.bits(2)? as u8;
    }
    Ok(())
}

/// Builds an AV1CodecConfigurationRecord from extradata holding the sequence header OBU.
pub fn decoder_configuration_record(extradata: &[u8]) -> Result<Bytes, MediaError> {
    let (obu, payload) = find_sequence_header(extradata)?;
    let s = parse_sequence_header(payload)?;
    let mut out = BytesMut::with_capacity(4 + obu.len());
    out.put_u8(0x81); // marker, version 1
    out.put_u8(s.profile << 5 | s.level);
    out.put_u8(
        u8::from(s.tier) << 7
            | u8::from(s.high_bitdepth) << 6
            | u8::from(s.twelve_bit) << 5
            | u8::from(s.monochrome) << 4
            | u8::from(s.subsampling_x) << 3
            | u8::from(s.subsampling_y) << 2
            | s.chroma_sample_position,
    );
    out.put_u8(0); // no initial presentation delay
    out.put_slice(obu);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence header OBU of a 320x240 8-bit 4:2:0 libaom stream.
    const SEQUENCE_HEADER: &[u8] = include_bytes!("testdata/aom-320x240.obu");

    #[test]
    fn builds_av1c_from_a_libaom_sequence_header() {
        let record = decoder_configuration_record(SEQUENCE_HEADER).unwrap();
        assert_eq!(record[0], 0x81);
        assert_eq!(record[1] >> 5, 0, "Main profile");
        assert_eq!(record[2] & 0b0111_1100, 0b0000_1100, "8-bit, 4:2:0");
        assert_eq!(&record[4..], SEQUENCE_HEADER);
    }

    #[test]
    fn finds_the_sequence_header_after_a_temporal_delimiter() {
        let mut stream = vec![0x12, 0x00];
        stream.extend_from_slice(SEQUENCE_HEADER);
        assert_eq!(
            decoder_configuration_record(&stream).unwrap(),
            decoder_configuration_record(SEQUENCE_HEADER).unwrap()
        );
    }

    #[test]
    fn truncated_obus_are_errors() {
        assert!(decoder_configuration_record(&SEQUENCE_HEADER[..6]).is_err());
        assert_eq!(
            decoder_configuration_record(&[0x12, 0x00])
                .unwrap_err()
                .to_string(),
            "AV1 sequence header OBU missing from the encoder's extra data"
        );
    }
}
