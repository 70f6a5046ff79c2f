//! OBS's encoder packets carried without copying: the packet's data is reference-counted
//! by libobs, so taking a reference and wrapping it as the owner of a [`Bytes`] hands the
//! encoder's own buffer to the session thread.

use bytes::Bytes;
use obs_sys::{
    encoder_packet, obs_encoder_packet_ref, obs_encoder_packet_release,
    obs_encoder_type_OBS_ENCODER_VIDEO,
};

use crate::live::{EncodedPacket, MediaKind};

/// One reference to an encoder packet's data, released when the last `Bytes` goes.
struct PacketRef(encoder_packet);

// SAFETY: libobs's packet references are atomic reference counts; the data is immutable
// while referenced, and releasing from any thread is what libobs's own outputs do.
unsafe impl Send for PacketRef {}

impl AsRef<[u8]> for PacketRef {
    fn as_ref(&self) -> &[u8] {
        if self.0.data.is_null() {
            return &[];
        }
        // SAFETY: data/size describe the referenced buffer, alive until release.
        unsafe { std::slice::from_raw_parts(self.0.data, self.0.size as usize) }
    }
}

impl Drop for PacketRef {
    fn drop(&mut self) {
        // SAFETY: this holds exactly one reference, taken in `take`.
        unsafe { obs_encoder_packet_release(&mut self.0) };
    }
}

/// Takes a reference to `packet` (no copy) as an [`EncodedPacket`].
///
/// # Safety
/// `packet` is a valid packet for the duration of the call (OBS's encoded_packet callback).
pub unsafe fn take(packet: &encoder_packet) -> EncodedPacket {
    let mut held = PacketRef(encoder_packet::default());
    obs_encoder_packet_ref(&mut held.0, (packet as *const encoder_packet).cast_mut());
    let kind = if packet.type_ == obs_encoder_type_OBS_ENCODER_VIDEO {
        MediaKind::Video
    } else {
        MediaKind::Audio
    };
    EncodedPacket {
        kind,
        pts: packet.pts,
        dts: packet.dts,
        timebase_num: packet.timebase_num,
        timebase_den: packet.timebase_den,
        keyframe: packet.keyframe,
        sys_dts_usec: packet.sys_dts_usec,
        track: u8::try_from(packet.track_idx).unwrap_or(u8::MAX),
        data: Bytes::from_owner(held),
    }
}
