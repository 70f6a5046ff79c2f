//! Recording one stream key to one continuous FLV file across all its connections.
//!
//! During a make-before-break move two connections carry the key at once: the old one up
//! to the switch keyframe, the new one from it. The recorder writes the oldest live
//! connection and holds newer connections' tags back until the older ones end, so the
//! file is stitched at the switch keyframe. Frames that repeat what the file already has
//! (a publisher resuming after a drop) and repeated codec headers are skipped and counted.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::media::flv::FlvWriter;
use crate::media::{Slot, Tag};

/// What the ingest saw of one stream key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamStats {
    /// The FLV file being written.
    pub path: PathBuf,
    /// Connections that published this key.
    pub connections: u32,
    /// Audio and video frames received, duplicates included.
    pub frames_received: u64,
    /// Frames written to the file.
    pub frames_written: u64,
    /// Frames skipped because the file already had them.
    pub duplicates: u64,
    /// Largest wait between one frame becoming available (in stream order) and the next:
    /// a stall a viewer would see.
    pub largest_gap: Duration,
    /// Timestamps (ms) where a new connection's media took over in the file.
    pub cutovers: Vec<u32>,
    /// Signals sent to publishers of this key.
    pub signals_sent: u32,
    /// The timestamp of the first frame each connection sent, in connection order: shows
    /// whether a publisher continued or restarted its clock on a new connection.
    pub first_timestamps: Vec<u32>,
}

struct Pending {
    tags: Vec<(Tag, Instant)>,
    ended: bool,
}

/// The stitching FLV writer of one key.
pub(crate) struct Recorder {
    writer: FlvWriter<File>,
    /// The connection being written, if any.
    current: Option<u64>,
    /// Newer connections' tags, held until the older ones end.
    waiting: BTreeMap<u64, Pending>,
    /// The last frame's timestamp written per slot (video, each audio track): a frame at or
    /// before it is a duplicate. Per slot, since tracks share timestamps.
    last_dts: BTreeMap<Slot, u32>,
    /// The last header written per slot: each new connection repeats them.
    last_headers: BTreeMap<Slot, Tag>,
    /// When the last written frame was available (latest arrival so far, in stream order).
    available: Option<Instant>,
    /// A new connection took over: its first frame marks a cutover.
    fresh: bool,
    /// Connections whose first frame was seen.
    seen: Vec<u64>,
    pub(crate) stats: StreamStats,
}

/// Opens `dir/name.flv`, or `dir/name.N.flv` if that exists (an ingest restarted).
fn create_unique(dir: &Path, name: &str) -> io::Result<(File, PathBuf)> {
    for n in 0u32..10_000 {
        let path = match n {
            0 => dir.join(format!("{name}.flv")),
            n => dir.join(format!("{name}.{n}.flv")),
        };
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "10000 recordings of {name} already exist"
    )))
}

/// The file name for a stream key: the key without its query string, with anything but
/// letters, digits, `-`, `_` and `.` replaced, so a key cannot escape the directory.
pub(crate) fn file_stem(key: &str) -> String {
    let name: String = key
        .split('?')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "stream".into()
    } else {
        name
    }
}

impl Recorder {
    pub(crate) fn create(dir: &Path, key: &str) -> io::Result<Self> {
        let (file, path) = create_unique(dir, &file_stem(key))?;
        Ok(Self {
            writer: FlvWriter::new(file)?,
            current: None,
            waiting: BTreeMap::new(),
            last_dts: BTreeMap::new(),
            last_headers: BTreeMap::new(),
            available: None,
            fresh: true,
            seen: Vec::new(),
            stats: StreamStats {
                path,
                ..StreamStats::default()
            },
        })
    }

    /// A tag from connection `conn` arrived at `arrival`.
    pub(crate) fn on_tag(&mut self, conn: u64, tag: Tag, arrival: Instant) -> io::Result<()> {
        self.stats.frames_received += u64::from(tag.is_frame());
        if tag.is_frame() && !self.seen.contains(&conn) {
            self.seen.push(conn);
            self.stats.first_timestamps.push(tag.timestamp);
        }
        let current = *self.current.get_or_insert(conn);
        if conn == current {
            return self.write(tag, arrival);
        }
        if conn < current {
            log::warn!("connection {conn} sent media after the stream moved on; dropped");
            return Ok(());
        }
        self.waiting
            .entry(conn)
            .or_insert_with(|| Pending {
                tags: Vec::new(),
                ended: false,
            })
            .tags
            .push((tag, arrival));
        Ok(())
    }

    /// Connection `conn` ended: the next connection's held tags follow.
    pub(crate) fn on_end(&mut self, conn: u64) -> io::Result<()> {
        if self.current != Some(conn) {
            if let Some(pending) = self.waiting.get_mut(&conn) {
                pending.ended = true;
            }
            return Ok(());
        }
        self.current = None;
        while let Some((next, pending)) = self.waiting.pop_first() {
            self.current = Some(next);
            self.fresh = true;
            for (tag, arrival) in pending.tags {
                self.write(tag, arrival)?;
            }
            if !pending.ended {
                break;
            }
            self.current = None;
        }
        if self.current.is_none() {
            self.fresh = true;
        }
        Ok(())
    }

    fn write(&mut self, tag: Tag, arrival: Instant) -> io::Result<()> {
        if tag.is_frame() {
            let slot = tag.slot();
            if self.fresh {
                self.fresh = false;
                if self.stats.frames_written > 0 {
                    self.stats.cutovers.push(tag.timestamp);
                }
            }
            if self
                .last_dts
                .get(&slot)
                .is_some_and(|&last| tag.timestamp <= last)
            {
                self.stats.duplicates += 1;
                return Ok(());
            }
            self.last_dts.insert(slot, tag.timestamp);
            let available = self.available.map_or(arrival, |a| a.max(arrival));
            if let Some(previous) = self.available {
                self.stats.largest_gap = self.stats.largest_gap.max(available - previous);
            }
            self.available = Some(available);
            self.stats.frames_written += 1;
        } else {
            let slot = tag.slot();
            if self
                .last_headers
                .get(&slot)
                .is_some_and(|h| h.data == tag.data)
            {
                return Ok(());
            }
            self.last_headers.insert(slot, tag.clone());
        }
        self.writer.write_tag(&tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv::FlvReader;
    use bytes::Bytes;

    fn frame(ts: u32, key: bool) -> Tag {
        let first = if key { 0x17 } else { 0x27 };
        Tag::video(ts, Bytes::from(vec![first, 1, 0, 0, 0, ts as u8]))
    }

    fn header() -> Tag {
        Tag::video(0, Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]))
    }

    #[test]
    fn stitches_overlapping_connections_at_the_switch() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::create(dir.path(), "live?token=x").unwrap();
        let t = Instant::now();
        rec.on_tag(1, header(), t).unwrap();
        rec.on_tag(1, frame(0, true), t).unwrap();
        rec.on_tag(1, frame(33, false), t).unwrap();
        // The new connection starts (headers again, then the keyframe) before the old ends.
        rec.on_tag(2, header(), t).unwrap();
        rec.on_tag(2, frame(100, true), t).unwrap();
        rec.on_tag(1, frame(66, false), t).unwrap();
        rec.on_end(1).unwrap();
        rec.on_tag(2, frame(133, false), t).unwrap();
        let timestamps: Vec<u32> = FlvReader::new(File::open(&rec.stats.path).unwrap())
            .unwrap()
            .map(|t| t.unwrap().timestamp)
            .collect();
        assert_eq!(
            timestamps,
            [0, 0, 33, 66, 100, 133],
            "one header, frames in order"
        );
        assert_eq!(rec.stats.cutovers, [100]);
        assert_eq!(rec.stats.frames_written, 5);
        assert_eq!(rec.stats.duplicates, 0);
        assert!(rec.stats.path.ends_with("live.flv"));
    }

    #[test]
    fn skips_and_counts_frames_the_file_already_has() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::create(dir.path(), "k").unwrap();
        let t = Instant::now();
        for ts in [0, 33, 66] {
            rec.on_tag(1, frame(ts, ts == 0), t).unwrap();
        }
        rec.on_end(1).unwrap();
        for ts in [0, 33, 66, 100] {
            rec.on_tag(2, frame(ts, ts == 0), t).unwrap();
        }
        assert_eq!(rec.stats.duplicates, 3);
        assert_eq!(rec.stats.frames_written, 4);
    }

    #[test]
    fn audio_tracks_sharing_timestamps_are_not_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Recorder::create(dir.path(), "k").unwrap();
        let t = Instant::now();
        for ts in [0, 21, 43] {
            rec.on_tag(1, Tag::audio(ts, Bytes::from_static(&[0xaf, 1, 0x21])), t)
                .unwrap();
            let vod = Bytes::from_static(b"\x95\x01mp4a\x01\x21");
            rec.on_tag(1, Tag::audio(ts, vod), t).unwrap();
        }
        assert_eq!(rec.stats.duplicates, 0);
        assert_eq!(rec.stats.frames_written, 6);
    }

    #[test]
    fn a_restarted_ingest_writes_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = Recorder::create(dir.path(), "k").unwrap();
        let second = Recorder::create(dir.path(), "k").unwrap();
        assert!(first.stats.path.ends_with("k.flv"));
        assert!(second.stats.path.ends_with("k.1.flv"));
        assert_eq!(file_stem("../../etc/passwd"), "______etc_passwd");
    }
}
