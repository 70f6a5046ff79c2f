//! FLV files: what the CLI publishes and what the reference ingest records.
//!
//! Tags pass through untouched: an FLV tag body is exactly an RTMP media message body.

use std::io::{self, Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use super::{Tag, TagKind};

const SIGNATURE: &[u8; 3] = b"FLV";
const HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
/// A tag body this large is corruption, not media (the RTMP limit is 16 MiB as well).
const MAX_TAG_LEN: usize = 0x00ff_ffff;

/// Why an FLV file could not be read.
#[derive(Debug, Error)]
pub enum FlvError {
    /// The file does not start with the FLV signature.
    #[error("not an FLV file (it does not start with \"FLV\")")]
    NotFlv,
    /// The file ends inside a tag.
    #[error("FLV truncated inside tag {index} at byte {offset}")]
    Truncated {
        /// 0-based tag number.
        index: u64,
        /// File offset where the tag starts.
        offset: u64,
    },
    /// A tag type other than audio, video or script data.
    #[error("corrupt FLV: tag {index} at byte {offset} has unknown type {tag_type}")]
    BadTagType {
        /// 0-based tag number.
        index: u64,
        /// File offset where the tag starts.
        offset: u64,
        /// The type found.
        tag_type: u8,
    },
    /// Encrypted (filtered) tags are not supported.
    #[error("FLV tag {index} at byte {offset} is encrypted; encrypted FLV is not supported")]
    Encrypted {
        /// 0-based tag number.
        index: u64,
        /// File offset where the tag starts.
        offset: u64,
    },
    /// Reading failed.
    #[error("reading FLV: {0}")]
    Io(#[from] io::Error),
}

/// Reads tags one at a time from an FLV stream.
#[derive(Debug)]
pub struct FlvReader<R> {
    inner: R,
    offset: u64,
    index: u64,
}

impl<R: Read> FlvReader<R> {
    /// Checks the FLV header and positions the reader at the first tag.
    pub fn new(mut inner: R) -> Result<Self, FlvError> {
        let mut header = [0u8; HEADER_LEN];
        read_exact_or(&mut inner, &mut header, FlvError::NotFlv)?;
        if &header[..3] != SIGNATURE {
            return Err(FlvError::NotFlv);
        }
        let data_offset = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as u64;
        let extra = data_offset.saturating_sub(HEADER_LEN as u64);
        io::copy(&mut (&mut inner).take(extra), &mut io::sink())?;
        Ok(Self {
            inner,
            offset: HEADER_LEN as u64 + extra,
            index: 0,
        })
    }

    /// The next tag, or `None` at a clean end of file.
    pub fn next_tag(&mut self) -> Result<Option<Tag>, FlvError> {
        // Errors name where the tag header starts, after the previous-tag-size field.
        let (index, offset) = (self.index, self.offset + 4);
        let truncated = || FlvError::Truncated { index, offset };
        let mut head = [0u8; 4 + TAG_HEADER_LEN];
        let mut got = 0;
        while got < head.len() {
            match self.inner.read(&mut head[got..]) {
                Ok(0) if got <= 4 => return Ok(None),
                Ok(0) => return Err(truncated()),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let h = &head[4..];
        if h[0] & 0x20 != 0 {
            return Err(FlvError::Encrypted { index, offset });
        }
        let tag_type = h[0] & 0x1f;
        let kind = TagKind::from_type_id(tag_type).ok_or(FlvError::BadTagType {
            index,
            offset,
            tag_type,
        })?;
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let mut data = BytesMut::zeroed(len.min(MAX_TAG_LEN));
        read_exact_or(&mut self.inner, &mut data, truncated())?;
        self.index += 1;
        self.offset += (head.len() + len) as u64;
        Ok(Some(Tag {
            kind,
            timestamp,
            data: data.freeze(),
        }))
    }
}

impl<R: Read> Iterator for FlvReader<R> {
    type Item = Result<Tag, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_tag().transpose()
    }
}

fn read_exact_or(reader: &mut impl Read, buf: &mut [u8], short: FlvError) -> Result<(), FlvError> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(short),
        Err(e) => Err(e.into()),
    }
}

/// Writes an FLV stream, one `write_all` per tag so that a crash never leaves more than
/// the last tag half written.
#[derive(Debug)]
pub struct FlvWriter<W> {
    inner: W,
}

impl<W: Write> FlvWriter<W> {
    /// Writes the FLV header (audio and video flags set) and the first previous-tag-size.
    pub fn new(mut inner: W) -> io::Result<Self> {
        inner.write_all(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00")?;
        Ok(Self { inner })
    }

    /// Appends one tag.
    pub fn write_tag(&mut self, tag: &Tag) -> io::Result<()> {
        self.inner.write_all(&encode_tag(tag))
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

/// One tag as FLV bytes: header, body, previous-tag-size.
pub fn encode_tag(tag: &Tag) -> Bytes {
    let len = tag.data.len().min(MAX_TAG_LEN);
    let mut out = BytesMut::with_capacity(TAG_HEADER_LEN + len + 4);
    out.put_u8(tag.kind.type_id());
    out.put_uint(len as u64, 3);
    out.put_uint(u64::from(tag.timestamp & 0x00ff_ffff), 3);
    out.put_u8((tag.timestamp >> 24) as u8);
    out.put_uint(0, 3);
    out.put_slice(&tag.data[..len]);
    out.put_u32((TAG_HEADER_LEN + len) as u32);
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<Tag> {
        vec![
            Tag {
                kind: TagKind::Script,
                timestamp: 0,
                data: Bytes::from_static(b"\x02\x00\x0aonMetaData\x05"),
            },
            Tag::video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2])),
            Tag::audio(0x0123_4567, Bytes::from_static(&[0xaf, 1, 9])),
        ]
    }

    fn file(tags: &[Tag]) -> Vec<u8> {
        let mut writer = FlvWriter::new(Vec::new()).unwrap();
        for tag in tags {
            writer.write_tag(tag).unwrap();
        }
        writer.inner
    }

    #[test]
    fn tags_round_trip_with_extended_timestamps() {
        let bytes = file(&sample());
        let tags: Vec<Tag> = FlvReader::new(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tags, sample());
    }

    #[test]
    fn reads_the_sample_clip() {
        let bytes = include_bytes!("../../data/sample.flv");
        let tags: Vec<Tag> = FlvReader::new(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(tags.iter().filter(|t| t.is_keyframe()).count() >= 19);
        assert!(tags.iter().filter(|t| t.is_sequence_header()).count() == 2);
    }

    #[test]
    fn corrupt_files_get_specific_errors() {
        assert!(matches!(
            FlvReader::new(&b"GIF89a..."[..]),
            Err(FlvError::NotFlv)
        ));
        assert!(matches!(FlvReader::new(&b"FL"[..]), Err(FlvError::NotFlv)));
        let bytes = file(&sample());
        let cut = &bytes[..bytes.len() - 6];
        let err = FlvReader::new(cut).unwrap().find_map(Result::err).unwrap();
        assert_eq!(err.to_string(), "FLV truncated inside tag 2 at byte 64");
        let mut bad = bytes.clone();
        bad[13] = 7;
        let err = FlvReader::new(&bad[..])
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "corrupt FLV: tag 0 at byte 13 has unknown type 7"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut bytes = b"FLV\x01\x05\x00\x00\x00\x09".to_vec();
            bytes.extend_from_slice(&body);
            for tag in FlvReader::new(&bytes[..]).unwrap() {
                if tag.is_err() { break; }
            }
        }
    }
}
