//! The packet channel between a media producer and the session.
//!
//! The producer side never blocks: OBS calls its encoded-packet callback on an encoder
//! thread, which must hand the packet over and return. A lock-free crossbeam queue carries
//! the tags; a tokio `Notify` wakes the session, which stores a permit when nobody waits, so
//! no wake-up is ever lost.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use tokio::sync::Notify;

use crate::media::Tag;

/// Creates a channel holding at most `capacity` items (tags, or OBS's encoder packets).
pub fn packet_channel<T>(capacity: usize) -> (PacketSender<T>, PacketReceiver<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
    let notify = Arc::new(Notify::new());
    (
        PacketSender {
            tx: Some(tx),
            notify: Arc::clone(&notify),
        },
        PacketReceiver { rx, notify },
    )
}

/// Why a tag was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The channel is full: the session is behind (the caller decides what to drop).
    #[error("packet channel full")]
    Full,
    /// The session has ended.
    #[error("session ended")]
    Closed,
}

/// The producer's end. Cloneable; the session sees the end of input when every clone is gone.
#[derive(Debug)]
pub struct PacketSender<T = Tag> {
    /// Always `Some` until drop, which must disconnect before it wakes the session.
    tx: Option<Sender<T>>,
    notify: Arc<Notify>,
}

impl<T> Clone for PacketSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            notify: Arc::clone(&self.notify),
        }
    }
}

impl<T> PacketSender<T> {
    /// Queues an item without ever blocking or allocating (for OBS's encoder thread).
    pub fn try_send(&self, tag: T) -> Result<(), SendError> {
        let tx = self.tx.as_ref().ok_or(SendError::Closed)?;
        let result = tx.try_send(tag).map_err(|e| match e {
            TrySendError::Full(_) => SendError::Full,
            TrySendError::Disconnected(_) => SendError::Closed,
        });
        self.notify.notify_one();
        result
    }

    /// Queues a tag, waiting while the channel is full (for reader threads that may wait,
    /// such as the CLI's FLV reader: this is how backpressure reaches a file source).
    pub fn send_blocking(&self, tag: T) -> Result<(), SendError> {
        let tx = self.tx.as_ref().ok_or(SendError::Closed)?;
        let result = tx.send(tag).map_err(|_| SendError::Closed);
        self.notify.notify_one();
        result
    }

    /// Tags waiting in the channel.
    pub fn len(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }

    /// Whether no tag is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for PacketSender<T> {
    fn drop(&mut self) {
        // Disconnect first, then wake the session: woken earlier, it could find the
        // channel empty but still connected and go back to sleep for good.
        drop(self.tx.take());
        self.notify.notify_one();
    }
}

/// The session's end. A clone shares the same queue (each item goes to one receiver), so an
/// owner can keep one for the channel's whole life and lend clones to successive sessions.
#[derive(Debug)]
pub struct PacketReceiver<T = Tag> {
    rx: Receiver<T>,
    notify: Arc<Notify>,
}

impl<T> Clone for PacketReceiver<T> {
    fn clone(&self) -> Self {
        Self {
            rx: self.rx.clone(),
            notify: Arc::clone(&self.notify),
        }
    }
}

impl<T: Send> PacketReceiver<T> {
    /// An item if one is waiting.
    pub fn try_recv(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// The next item; `None` once every sender is gone and the channel is empty.
    ///
    /// Cancel-safe: an item is only taken when this returns it.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.rx.try_recv() {
                Ok(tag) => return Some(tag),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => self.notify.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn delivers_in_order_then_ends() {
        let (tx, mut rx) = packet_channel(4);
        let producer = std::thread::spawn(move || {
            for ts in 0..100 {
                tx.send_blocking(Tag::audio(ts, Bytes::new())).unwrap();
            }
        });
        for ts in 0..100 {
            assert_eq!(rx.recv().await.unwrap().timestamp, ts);
        }
        assert_eq!(rx.recv().await, None);
        producer.join().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_end_of_input_is_never_missed() {
        for _ in 0..2000 {
            let (tx, mut rx) = packet_channel(4);
            let producer = std::thread::spawn(move || tx.try_send(Tag::audio(0, Bytes::new())));
            let ended = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while rx.recv().await.is_some() {}
            });
            ended.await.expect("the session missed the end of input");
            producer.join().unwrap().unwrap();
        }
    }

    #[test]
    fn try_send_reports_full_and_closed_without_blocking() {
        let (tx, rx) = packet_channel(1);
        tx.try_send(Tag::audio(0, Bytes::new())).unwrap();
        assert_eq!(
            tx.try_send(Tag::audio(1, Bytes::new())),
            Err(SendError::Full)
        );
        drop(rx);
        assert_eq!(
            tx.try_send(Tag::audio(2, Bytes::new())),
            Err(SendError::Closed)
        );
    }
}
