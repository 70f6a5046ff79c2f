//! Micro-benchmark of the hot path: chunking media tags for the socket and reassembling
//! them, in memory. Prints throughput; `benches/publish-vs-ffmpeg.sh` measures the whole
//! publisher against ffmpeg.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use obs_goaway::protocol::chunk::{ChunkReader, ChunkWriter, RawMessage};

fn main() {
    // 8 Mb/s at 30 fps: 33 KB frames.
    let payload = Bytes::from(vec![0x5a; 33_000]);
    let frames = 30 * 60;
    let messages: Vec<RawMessage> = (0..frames)
        .map(|i| RawMessage {
            csid: 6,
            timestamp: i * 33,
            type_id: 9,
            stream_id: 1,
            payload: payload.clone(),
        })
        .collect();
    let total = (payload.len() * messages.len()) as f64;

    let mut writer = ChunkWriter::new();
    writer.set_chunk_size(4096);
    let mut out = VecDeque::new();
    let start = Instant::now();
    let mut wire = 0;
    for m in &messages {
        wire += writer.write(m, &mut out);
        out.clear();
    }
    let encode = start.elapsed().as_secs_f64();
    black_box(wire);

    let mut writer = ChunkWriter::new();
    writer.set_chunk_size(4096);
    let mut bytes = BytesMut::new();
    for m in &messages {
        writer.write(m, &mut out);
        for b in out.drain(..) {
            bytes.extend_from_slice(&b);
        }
    }
    let mut reader = ChunkReader::new();
    reader.set_chunk_size(4096).expect("valid size");
    let start = Instant::now();
    let mut decoded = 0;
    while let Ok(Some(m)) = reader.read(&mut bytes) {
        decoded += m.payload.len();
    }
    let decode = start.elapsed().as_secs_f64();
    assert_eq!(decoded as f64, total);

    println!(
        "chunk encode: {:>8.0} MB/s ({} frames of 33 KB, header overhead {:.2} %)",
        total / encode / 1e6,
        frames,
        (wire as f64 - total) / total * 100.0
    );
    println!("chunk decode: {:>8.0} MB/s", total / decode / 1e6);
}
