//! H.264: the AVCDecoderConfigurationRecord built from Annex-B SPS and PPS.

use bytes::{BufMut, Bytes, BytesMut};

use super::annexb::nal_units;
use super::MediaError;

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

/// Builds an AVCDecoderConfigurationRecord (ISO 14496-15) from Annex-B extradata holding
/// the SPS and PPS, with 4-byte NAL lengths.
pub fn decoder_configuration_record(extradata: &[u8]) -> Result<Bytes, MediaError> {
    let units: Vec<&[u8]> = nal_units(extradata).collect();
    let of_type =
        |t: u8| -> Vec<&[u8]> { units.iter().copied().filter(|u| u[0] & 0x1f == t).collect() };
    let (sps, pps) = (of_type(NAL_SPS), of_type(NAL_PPS));
    let first = sps.first().ok_or(MediaError::Missing("H.264 SPS"))?;
    if pps.is_empty() {
        return Err(MediaError::Missing("H.264 PPS"));
    }
    if first.len() < 4 {
        return Err(MediaError::Truncated("H.264 SPS"));
    }
    // The record gives each parameter set a 16-bit length.
    if sps
        .iter()
        .chain(&pps)
        .any(|u| u.len() > usize::from(u16::MAX))
    {
        return Err(MediaError::Invalid(
            "H.264 parameter set longer than 65535 bytes",
        ));
    }
    let mut out = BytesMut::with_capacity(16 + extradata.len());
    out.put_u8(1);
    out.put_slice(&first[1..4]); // profile, compatibility, level
    out.put_u8(0xff); // 4-byte lengths
    out.put_u8(0xe0 | sps.len().min(31) as u8);
    for unit in sps.iter().take(31) {
        out.put_u16(unit.len() as u16);
        out.put_slice(unit);
    }
    out.put_u8(pps.len().min(255) as u8);
    for unit in pps.iter().take(255) {
        out.put_u16(unit.len() as u16);
        out.put_slice(unit);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_record_from_annex_b() {
        let extradata = [
            0, 0, 0, 1, 0x67, 0x64, 0, 0x1f, 0xac, 0, 0, 0, 1, 0x68, 0xee, 0x3c,
        ];
        let record = decoder_configuration_record(&extradata).unwrap();
        assert_eq!(
            &record[..],
            &[
                1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 5, 0x67, 0x64, 0, 0x1f, 0xac, 1, 0, 3, 0x68, 0xee,
                0x3c
            ]
        );
    }

    #[test]
    fn missing_parameter_sets_are_named() {
        let only_sps = [0, 0, 1, 0x67, 0x64, 0, 0x1f];
        assert_eq!(
            decoder_configuration_record(&only_sps)
                .unwrap_err()
                .to_string(),
            "H.264 PPS missing from the encoder's extra data"
        );
        assert!(decoder_configuration_record(&[]).is_err());
    }

    #[test]
    fn parameter_sets_too_long_for_the_record_are_refused() {
        // Found while writing the codec_config fuzz property: the 16-bit length wrapped
        // and the record described other bytes than it held.
        let mut extradata = vec![0, 0, 1, 0x67, 0x64, 0, 0x1f];
        extradata.resize(7 + 65536, 0xac);
        extradata.extend_from_slice(&[0, 0, 1, 0x68, 0xee, 0x3c]);
        assert_eq!(
            decoder_configuration_record(&extradata),
            Err(MediaError::Invalid(
                "H.264 parameter set longer than 65535 bytes"
            ))
        );
    }
}
