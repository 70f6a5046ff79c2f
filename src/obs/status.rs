//! The running stream's status as the dialog shows it (localized lines) and obs-websocket
//! returns it (fields).

use crate::session::{Cause, Status};

use super::locale::{text, tr};

/// The dialog's read-only status lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusLines {
    pub(crate) server: String,
    pub(crate) moves: String,
    pub(crate) frames: String,
    pub(crate) buffer: String,
}

/// Localized name of a move's cause.
pub(crate) fn cause_text(cause: Cause) -> String {
    text(match cause {
        Cause::GoAway => tr!("Cause.GoAway"),
        Cause::ReconnectRequest => tr!("Cause.ReconnectRequest"),
        Cause::ConnectionLost => tr!("Cause.ConnectionLost"),
        Cause::UserRequest => tr!("Cause.UserRequest"),
    })
}

/// The lines for `status` (`None`: not streaming).
pub(crate) fn lines(status: Option<&Status>) -> StatusLines {
    let Some(status) = status else {
        let idle = text(tr!("Status.NotStreaming"));
        return StatusLines {
            server: idle.clone(),
            moves: idle.clone(),
            frames: idle.clone(),
            buffer: idle,
        };
    };
    // As the Server field shows it: without the redacted key's placeholder, which OBS's
    // labels would also take for markup.
    let server = match status.server.strip_suffix("/<key>") {
        _ if status.server.is_empty() => text(tr!("Status.Connecting")),
        Some(server) => server.to_string(),
        None => status.server.clone(),
    };
    let moves = match status.moves.last() {
        None => text(tr!("Status.NoMoves")),
        Some(last) => text(tr!("Status.MovesValue"))
            .replace("%1", &status.moves.len().to_string())
            .replace("%2", &cause_text(last.cause))
            .replace("%3", &last.took.as_millis().to_string()),
    };
    StatusLines {
        server,
        moves,
        frames: format!("{} / {}", status.lost, status.duplicates),
        buffer: format!("{:.1} MiB", status.buffer_bytes as f64 / f64::from(1 << 20)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Cutover, CutoverKind};
    use std::time::Duration;

    #[test]
    fn lines_name_the_last_move_and_never_the_key() {
        let status = Status {
            server: "rtmp://b.example/live/<key>".into(),
            moves: vec![
                Cutover {
                    cause: Cause::GoAway,
                    kind: CutoverKind::MakeBeforeBreak,
                    keyframe_timestamp: 6000,
                    took: Duration::from_millis(900),
                    duplicates: 0,
                },
                Cutover {
                    cause: Cause::UserRequest,
                    kind: CutoverKind::MakeBeforeBreak,
                    keyframe_timestamp: 12000,
                    took: Duration::from_millis(1234),
                    duplicates: 0,
                },
            ],
            lost: 0,
            duplicates: 2,
            buffer_bytes: 3 << 20,
        };
        let shown = lines(Some(&status));
        assert_eq!(shown.server, "rtmp://b.example/live");
        // Without OBS's locale the keys stand for the texts.
        assert_eq!(shown.moves, "Status.MovesValue");
        assert_eq!(shown.frames, "0 / 2");
        assert_eq!(shown.buffer, "3.0 MiB");
        assert_eq!(lines(None).server, "Status.NotStreaming");
    }
}
