//! A big-endian bit reader for parameter sets and OBU headers.

use super::MediaError;

/// Reads bits most-significant first; reading past the end is an error, not a panic.
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    pub(crate) fn bit(&mut self) -> Result<bool, MediaError> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or(MediaError::Truncated("parameter set"))?;
        let bit = byte >> (7 - self.pos % 8) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` (at most 64) bits.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u64, MediaError> {
        let mut value = 0u64;
        for _ in 0..n {
            value = value << 1 | u64::from(self.bit()?);
        }
        Ok(value)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        if self.pos + n > self.data.len() * 8 {
            return Err(MediaError::Truncated("parameter set"));
        }
        self.pos += n;
        Ok(())
    }

    /// Exp-Golomb unsigned (H.264/HEVC `ue(v)`).
    pub(crate) fn ue(&mut self) -> Result<u32, MediaError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(MediaError::Invalid("Exp-Golomb code longer than 32 bits"));
            }
        }
        Ok(((1u64 << zeros) - 1 + self.bits(zeros)?) as u32)
    }

    /// AV1 `uvlc()`.
    pub(crate) fn uvlc(&mut self) -> Result<u32, MediaError> {
        self.ue()
    }
}

/// Removes emulation prevention bytes (00 00 03 → 00 00) to get the RBSP of a NAL unit.
pub(crate) fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bits_and_exp_golomb() {
        // 1 | 010 | 011 | 00100 | 0...
        let mut r = BitReader::new(&[0b1010_0110, 0b0100_0000]);
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert!(BitReader::new(&[0, 0, 0, 0, 0]).ue().is_err());
        assert!(BitReader::new(&[]).bit().is_err());
    }

    #[test]
    fn strips_emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            [0, 0, 1, 0, 0, 0, 3]
        );
    }
}
