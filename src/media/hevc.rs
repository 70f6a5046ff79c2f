//! HEVC: the HEVCDecoderConfigurationRecord (`hvcC`) built from Annex-B VPS, SPS and PPS.

use bytes::{BufMut, Bytes, BytesMut};

use super::annexb::nal_units;
use super::bits::{unescape_rbsp, BitReader};
use super::MediaError;

const NAL_VPS: u8 = 32;
const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;

fn nal_type(unit: &[u8]) -> u8 {
    unit[0] >> 1 & 0x3f
}

/// What `hvcC` repeats from the SPS.
#[derive(Debug, Default, PartialEq, Eq)]
struct SpsInfo {
    /// profile_space(2) tier(1) profile_idc(5), then 32 compatibility flags, 48 constraint
    /// flags and the level: the 12 bytes of general profile_tier_level, verbatim.
    general: [u8; 12],
    max_sub_layers: u8,
    temporal_id_nesting: bool,
    chroma_format_idc: u8,
    bit_depth_luma_minus8: u8,
    bit_depth_chroma_minus8: u8,
}

fn parse_sps(unit: &[u8]) -> Result<SpsInfo, MediaError> {
    let rbsp = unescape_rbsp(unit.get(2..).ok_or(MediaError::Truncated("HEVC SPS"))?);
    let mut r = BitReader::new(&rbsp);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)? as u8;
    // 7 is reserved; hvcC's numTemporalLayers has 3 bits and would take 8 into the next field.
    if max_sub_layers_minus1 > 6 {
        return Err(MediaError::Invalid("HEVC SPS has more than 7 sub-layers"));
    }
    let temporal_id_nesting = r.bit()?;
    let mut general = [0u8; 12];
    for byte in &mut general {
        *byte = r.bits(8)? as u8;
    }
    let mut present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        present.push((r.bit()?, r.bit()?));
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - usize::from(max_sub_layers_minus1)))?;
    }
    for (profile, level) in present {
        r.skip(if profile { 88 } else { 0 } + if level { 8 } else { 0 })?;
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc == 3 {
        r.bit()?; // separate_colour_plane_flag
    }
    r.ue()?; // pic_width_in_luma_samples
    r.ue()?; // pic_height_in_luma_samples
    if r.bit()? {
        for _ in 0..4 {
            r.ue()?; // conformance window offsets
        }
    }
    let bit_depth_luma_minus8 = r.ue()?;
    let bit_depth_chroma_minus8 = r.ue()?;
    if chroma_format_idc > 3 || bit_depth_luma_minus8 > 8 || bit_depth_chroma_minus8 > 8 {
        return Err(MediaError::Invalid(
            "HEVC SPS has impossible chroma format or bit depth",
        ));
    }
    Ok(SpsInfo {
        general,
        max_sub_layers: max_sub_layers_minus1 + 1,
        temporal_id_nesting,
        chroma_format_idc: chroma_format_idc as u8,
        bit_depth_luma_minus8: bit_depth_luma_minus8 as u8,
        bit_depth_chroma_minus8: bit_depth_chroma_minus8 as u8,
    })
}

/// Builds an HEVCDecoderConfigurationRecord (ISO 14496-15) from Annex-B extradata.
pub fn decoder_configuration_record(extradata: &[u8]) -> Result<Bytes, MediaError> {
    let units: Vec<&[u8]> = nal_units(extradata).filter(|u| u.len() >= 2).collect();
    let of_type =
        |t: u8| -> Vec<&[u8]> { units.iter().copied().filter(|u| nal_type(u) == t).collect() };
    let arrays = [
        (NAL_VPS, of_type(NAL_VPS)),
        (NAL_SPS, of_type(NAL_SPS)),
        (NAL_PPS, of_type(NAL_PPS)),
    ];
    for (name, (_, list)) in ["HEVC VPS", "HEVC SPS", "HEVC PPS"]
        .into_iter()
        .zip(&arrays)
    {
        if list.is_empty() {
            return Err(MediaError::Missing(name));
        }
    }
    // The record gives each array a 16-bit count and each unit a 16-bit length.
    let limit = usize::from(u16::MAX);
    if arrays
        .iter()
        .any(|(_, list)| list.len() > limit || list.iter().any(|u| u.len() > limit))
    {
        return Err(MediaError::Invalid(
            "HEVC parameter sets too long or too many for hvcC",
        ));
    }
    let sps = parse_sps(arrays[1].1[0])?;
    let mut out = BytesMut::with_capacity(32 + extradata.len());
    out.put_u8(1);
    out.put_slice(&sps.general);
    out.put_u16(0xf000); // min_spatial_segmentation_idc 0
    out.put_u8(0xfc); // parallelismType unknown
    out.put_u8(0xfc | sps.chroma_format_idc);
    out.put_u8(0xf8 | sps.bit_depth_luma_minus8);
    out.put_u8(0xf8 | sps.bit_depth_chroma_minus8);
    out.put_u16(0); // avgFrameRate unknown
    out.put_u8(sps.max_sub_layers << 3 | u8::from(sps.temporal_id_nesting) << 2 | 3);
    out.put_u8(arrays.len() as u8);
    for (nal_type, list) in &arrays {
        out.put_u8(0x80 | nal_type);
        out.put_u16(list.len() as u16);
        for unit in list {
            out.put_u16(unit.len() as u16);
            out.put_slice(unit);
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VPS, SPS and PPS of a 320x240 Main-profile x265 stream (`ffmpeg -f lavfi -i testsrc
    /// -pix_fmt yuv420p -c:v libx265 -f hevc`, first 86 bytes).
    const EXTRADATA: &[u8] = include_bytes!("testdata/x265-main-320x240.hevc");

    #[test]
    fn builds_hvcc_from_x265_parameter_sets() {
        let record = decoder_configuration_record(EXTRADATA).unwrap();
        assert_eq!(record[0], 1);
        assert_eq!(record[1], 0x01, "Main profile, tier 0");
        assert_eq!(&record[2..6], &[0x60, 0, 0, 0], "compatibility flags");
        assert_eq!(record[12], 0x3c, "level 2");
        assert_eq!(record[16], 0xfd, "chroma 4:2:0");
        assert_eq!(record[17], 0xf8, "8-bit luma");
        assert_eq!(record[21] >> 3, 1, "one temporal layer");
        assert_eq!(record[22], 3, "three arrays");
        assert_eq!(record[23], 0x80 | NAL_VPS);
    }

    #[test]
    fn missing_or_garbage_parameter_sets_are_errors() {
        assert_eq!(
            decoder_configuration_record(&EXTRADATA[..30])
                .unwrap_err()
                .to_string(),
            "HEVC SPS missing from the encoder's extra data"
        );
        let mut garbage = EXTRADATA.to_vec();
        garbage.truncate(40);
        garbage.extend_from_slice(&[0, 0, 0, 1, 0x44, 0x01, 0xc1]);
        assert!(decoder_configuration_record(&garbage).is_err());
    }

    #[test]
    fn a_reserved_sub_layer_count_is_refused() {
        // Found by the codec_config fuzz target: sps_max_sub_layers_minus1 = 7 gave
        // numTemporalLayers 8, which overflowed into constantFrameRate.
        let sps_at = EXTRADATA
            .windows(5)
            .position(|w| w[..3] == [0, 0, 1] && w[3] >> 1 & 0x3f == NAL_SPS)
            .unwrap()
            + 5;
        let mut extradata = EXTRADATA.to_vec();
        extradata[sps_at] |= 0x0e;
        assert_eq!(
            decoder_configuration_record(&extradata),
            Err(MediaError::Invalid("HEVC SPS has more than 7 sub-layers"))
        );
    }

    #[test]
    fn parameter_sets_too_long_for_the_record_are_refused() {
        // Found while writing the codec_config fuzz property: the 16-bit length wrapped.
        let mut extradata = EXTRADATA.to_vec();
        extradata.extend_from_slice(&[0, 0, 1, 0x44, 0x01]);
        extradata.resize(extradata.len() + 65536, 0xc1);
        assert_eq!(
            decoder_configuration_record(&extradata),
            Err(MediaError::Invalid(
                "HEVC parameter sets too long or too many for hvcC"
            ))
        );
    }
}
