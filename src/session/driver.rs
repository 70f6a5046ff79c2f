//! The tokio driver of a [`SessionCore`]: it owns the links, the connection attempts and
//! the timer, reads the clock, feeds the core what happens and carries out its commands.
//! Every decision is the core's.

use std::collections::HashMap;
use std::future::{pending, poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::core::{Command, Input, LinkId, SessionCore};
use super::{Report, Resolver, SessionConfig, SessionError, SessionEvent, TagInput};
use crate::media::Tag;
use crate::transport::io::sleep_until_some;
use crate::transport::link::{Command as LinkCommand, Slot};
use crate::transport::{establish, Established, Link, LinkError, LinkEvent, LinkOptions, RtmpUrl};

/// Publishes everything `input` yields to `config.url`, moving between connections as the
/// server asks or as connections fail, until the producer closes the channel; then ends the
/// stream cleanly (FCUnpublish, deleteStream).
///
/// The first connection's failure is returned at once; later failures are retried.
pub async fn run<I: TagInput>(
    config: SessionConfig,
    mut input: I,
    events: Option<mpsc::UnboundedSender<SessionEvent>>,
) -> Result<Report, SessionError> {
    let handle = Arc::clone(&config.handle);
    let mut driver = Driver {
        options: config.link.clone(),
        origin: config.url.clone(),
        resolve: config.resolve.clone(),
        opened: false,
        links: HashMap::new(),
        connecting: HashMap::new(),
        events,
    };
    let mut core = SessionCore::new(config);
    loop {
        driver.carry_out(&mut core, None);
        if let Some(outcome) = core.poll_outcome() {
            return outcome;
        }
        driver.sync_delivered(&mut core);
        let room = core
            .wants_room()
            .and_then(|id| Some((id, driver.links.get_mut(&id)?.sender())));
        let timeout = core.poll_timeout().map(Instant::from_std);
        let want_input = core.wants_input();
        let wake = tokio::select! {
            tag = input.next_tag(), if want_input => Wake::Input(tag),
            slot = reserve(room.as_ref().map(|(_, tx)| tx.clone())) => {
                Wake::Room(room.map(|(id, _)| id).zip(slot))
            }
            (id, event) = next_link_event(&mut driver.links) => Wake::Link(id, event),
            (id, result) = next_established(&mut driver.connecting) => Wake::Established(id, Box::new(result)),
            () = sleep_until_some(timeout), if timeout.is_some() => Wake::Timeout,
            () = handle.requested() => Wake::MoveRequested,
        };
        driver.sync_delivered(&mut core);
        let now = Instant::now().into_std();
        match wake {
            Wake::Input(Some(tag)) => core.handle_input(now, Input::Tag(tag)),
            Wake::Input(None) => core.handle_input(now, Input::InputEnded),
            Wake::Room(Some((link, slot))) => {
                core.handle_input(now, Input::Writable { link });
                driver.carry_out(&mut core, Some((link, slot)));
            }
            // The link task ended; its Closed event follows.
            Wake::Room(None) => {}
            Wake::Link(link, LinkEvent::Server(event)) => {
                core.handle_input(now, Input::Server { link, event });
            }
            Wake::Link(link, LinkEvent::Path(stats)) => {
                core.handle_input(now, Input::PathStats { link, stats });
            }
            Wake::Link(link, LinkEvent::Closed(result)) => {
                driver.links.remove(&link);
                core.handle_input(now, Input::Closed { link, result });
            }
            Wake::Established(link, result) => {
                driver.connecting.remove(&link);
                let input = match *result {
                    Ok(established) => {
                        let connect_time = established.connect_time;
                        driver
                            .links
                            .insert(link, DriverLink::new(established, &driver.options));
                        Input::Connected { link, connect_time }
                    }
                    Err(error) => Input::ConnectFailed { link, error },
                };
                core.handle_input(now, input);
            }
            Wake::Timeout => core.handle_timeout(now),
            Wake::MoveRequested => {
                if let Some(server) = handle.take_move_request() {
                    core.handle_input(now, Input::MoveRequest { server });
                }
            }
        }
    }
}

/// What woke the driver.
enum Wake {
    Input(Option<Tag>),
    Room(Option<(LinkId, Slot)>),
    Link(LinkId, LinkEvent),
    Established(LinkId, Box<Result<Established, LinkError>>),
    Timeout,
    MoveRequested,
}

/// A live link and the delivery figure last reported to the core.
struct DriverLink {
    link: Link,
    reported: u64,
}

impl DriverLink {
    fn new(established: Established, options: &LinkOptions) -> Self {
        Self {
            link: established.spawn(options),
            reported: 0,
        }
    }

    fn sender(&mut self) -> mpsc::Sender<LinkCommand> {
        self.link.parts().0.clone()
    }
}

struct Driver {
    options: LinkOptions,
    /// The configured server, and how to find where it points now.
    origin: RtmpUrl,
    resolve: Option<Resolver>,
    /// The first connection was opened (with the address just resolved by the owner).
    opened: bool,
    links: HashMap<LinkId, DriverLink>,
    connecting: HashMap<LinkId, JoinHandle<Result<Established, LinkError>>>,
    events: Option<mpsc::UnboundedSender<SessionEvent>>,
}

impl Driver {
    /// Carries out the core's commands (a `Send` uses `room`) and forwards its events.
    fn carry_out(&mut self, core: &mut SessionCore, mut room: Option<(LinkId, Slot)>) {
        while let Some(command) = core.poll_command() {
            match command {
                Command::Open { link, url } => {
                    let options = self.options.clone();
                    let resolve = self
                        .resolve
                        .clone()
                        .filter(|_| self.opened && url == self.origin);
                    self.opened = true;
                    let task = tokio::spawn(async move {
                        let url = match resolve {
                            Some(resolve) => resolved(resolve, url).await,
                            None => url,
                        };
                        establish(&url, &options).await
                    });
                    self.connecting.insert(link, task);
                }
                Command::Send { link, tag, seq } => match room.take() {
                    Some((id, slot)) if id == link => slot.send(tag, seq),
                    _ => log::error!("session sent a tag without room on the link"),
                },
                Command::Finish { link, unpublish } => {
                    if let Some(l) = self.links.get(&link) {
                        l.link.finish(unpublish);
                    }
                }
                Command::Close { link } => {
                    self.links.remove(&link);
                    if let Some(task) = self.connecting.remove(&link) {
                        task.abort();
                    }
                }
            }
        }
        while let Some(event) = core.poll_event() {
            if let Some(events) = &self.events {
                let _ = events.send(event);
            }
        }
    }

    /// Tells the core how far each link's server has provably received the stream.
    fn sync_delivered(&mut self, core: &mut SessionCore) {
        let now = Instant::now().into_std();
        for (&link, l) in &mut self.links {
            let upto = l.link.delivered();
            if upto != l.reported {
                l.reported = upto;
                core.handle_input(now, Input::Delivered { link, upto });
            }
        }
    }
}

/// Where the configured server points now; `url` if the resolver fails.
async fn resolved(resolve: Resolver, url: RtmpUrl) -> RtmpUrl {
    let result = tokio::task::spawn_blocking(move || (resolve.0)())
        .await
        .map_err(|error| error.to_string())
        .and_then(|result| result);
    match result {
        Ok(now) => {
            if now != url {
                log::info!("the service now points to {now} (was {url})");
            }
            now
        }
        Err(error) => {
            log::warn!("could not resolve the server again ({error}): using {url}");
            url
        }
    }
}

async fn reserve(tx: Option<mpsc::Sender<LinkCommand>>) -> Option<Slot> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok().map(Slot::new),
        None => pending().await,
    }
}

/// The next event of any link; a link whose task is gone reads as closed by the server.
async fn next_link_event(links: &mut HashMap<LinkId, DriverLink>) -> (LinkId, LinkEvent) {
    poll_fn(|cx| {
        for (&id, l) in links.iter_mut() {
            if let Poll::Ready(event) = l.link.parts().1.poll_recv(cx) {
                let event = event.unwrap_or(LinkEvent::Closed(Err(LinkError::ClosedByServer)));
                return Poll::Ready((id, event));
            }
        }
        Poll::Pending
    })
    .await
}

/// The next connection attempt to finish.
async fn next_established(
    connecting: &mut HashMap<LinkId, JoinHandle<Result<Established, LinkError>>>,
) -> (LinkId, Result<Established, LinkError>) {
    poll_fn(|cx| {
        for (&id, task) in connecting.iter_mut() {
            if let Poll::Ready(joined) = Pin::new(task).poll(cx) {
                let result =
                    joined.unwrap_or_else(|e| Err(LinkError::Io(std::io::Error::other(e))));
                return Poll::Ready((id, result));
            }
        }
        Poll::Pending
    })
    .await
}
