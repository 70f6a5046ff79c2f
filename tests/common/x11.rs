//! Quitting an X11 application the way its user does: every open dialog, then the main
//! window, gets the window manager's close request (`WM_DELETE_WINDOW`), which the
//! application handles in its own event loop.
//!
//! Why tests quit OBS 29 so and not with SIGINT: OBS 29.0's SIGINT handler runs Qt code
//! inside the signal handler (fixed in OBS 29.1 by commit 5182368, "UI: Properly handle
//! SIGINT on non-Windows platforms"). Ctrl+C interrupts whatever the main thread was doing
//! and now and then crashes OBS in a posted event for a widget the handler had just deleted.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeWindowAttributesAux, ClientMessageEvent, ConnectionExt, EventMask, MapState,
    Window,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::CURRENT_TIME;

use std::time::{Duration, Instant};

/// Sends the close request to every viewable top-level window on `display` that accepts it,
/// dialogs first, last to the one whose title contains `main_title` (viewable or not).
/// Fails, saying what was missing, when there is no such main window.
pub fn close_application(display: u32, main_title: &str) -> Result<(), String> {
    let (x, main) = close_dialogs_on(display, main_title)?;
    let main = main.ok_or_else(|| {
        format!("no window titled \"…{main_title}…\" accepting WM_DELETE_WINDOW on :{display}")
    })?;
    x.close(main).map_err(|e| e.to_string())
}

/// Waits until the application owning the window titled `main_title` answers the window
/// manager's ping (`_NET_WM_PING`), at most `timeout`: its event loop then runs and has
/// handled every X event sent to it before. OBS 29 quit before that crashes now and then
/// (SIGSEGV in `QXcbWindow::handleNativeEvent`, an event for one of its windows that its
/// shutdown had already deleted), and no user quits a window that has not drawn yet.
pub fn wait_for_event_loop(
    display: u32,
    main_title: &str,
    timeout: Duration,
) -> Result<(), String> {
    let (conn, screen) = x11rb::connect(Some(&format!(":{display}")))
        .map_err(|e| format!("display :{display}: {e}"))?;
    let x = X::new(conn, screen).map_err(|e| format!("display :{display}: {e}"))?;
    let main = x
        .top_level()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|&window| x.title(window).contains(main_title))
        .ok_or_else(|| format!("no window titled \"…{main_title}…\" on :{display}"))?;
    x.ping(main, timeout).map_err(|e| e.to_string())
}

/// One line per top-level window on `display` (id, map state, whether it takes the close
/// request, the window it is transient for, its `_NET_WM_STATE`, its title): what a quit
/// that was ignored leaves for the reader to explain it.
pub fn describe_windows(display: u32) -> Result<String, String> {
    let (conn, screen) = x11rb::connect(Some(&format!(":{display}")))
        .map_err(|e| format!("display :{display}: {e}"))?;
    let x = X::new(conn, screen).map_err(|e| format!("display :{display}: {e}"))?;
    let mut lines = String::new();
    for window in x.top_level().map_err(|e| e.to_string())? {
        let title = x.title(window);
        let viewable = if x.viewable(window) {
            "viewable"
        } else {
            "unmapped"
        };
        let close = if x.accepts_close(window) {
            "takes close"
        } else {
            "no close"
        };
        let transient = x
            .window_property(
                window,
                AtomEnum::WM_TRANSIENT_FOR.into(),
                AtomEnum::WINDOW.into(),
            )
            .first()
            .map_or(String::new(), |parent| {
                format!(" transient for {parent:#x}")
            });
        let states: Vec<String> = x
            .window_property(window, x.net_wm_state, AtomEnum::ATOM.into())
            .into_iter()
            .map(|atom| x.atom_name(atom))
            .collect();
        lines.push_str(&format!(
            "{window:#x} {viewable}, {close}{transient} [{}] \"{title}\"\n",
            states.join(" ")
        ));
    }
    Ok(lines)
}

/// Sends the close request to every viewable top-level window on `display` that accepts it
/// except the one whose title contains `main_title`: the dialogs an application opens while
/// it quits (a message box waiting for its OK holds the quit up).
pub fn close_dialogs(display: u32, main_title: &str) -> Result<(), String> {
    close_dialogs_on(display, main_title).map(drop)
}

/// [`close_dialogs`], returning the connection and the main window, if any.
fn close_dialogs_on(display: u32, main_title: &str) -> Result<(X, Option<Window>), String> {
    let (conn, screen) = x11rb::connect(Some(&format!(":{display}")))
        .map_err(|e| format!("display :{display}: {e}"))?;
    let x = X::new(conn, screen).map_err(|e| format!("display :{display}: {e}"))?;
    let mut main = None;
    for window in x.top_level().map_err(|e| e.to_string())? {
        if !x.accepts_close(window) {
            continue;
        }
        if x.title(window).contains(main_title) {
            main = Some(window);
        } else if x.viewable(window) {
            x.close(window).map_err(|e| e.to_string())?;
        }
    }
    Ok((x, main))
}

/// X11 calls fail with connection, request and reply errors alike.
type XResult<T> = Result<T, Box<dyn std::error::Error>>;

/// A connection with the atoms the close request needs.
struct X {
    conn: RustConnection,
    root: Window,
    protocols: u32,
    delete: u32,
    net_wm_name: u32,
    net_wm_state: u32,
    net_wm_ping: u32,
}

impl X {
    fn new(conn: RustConnection, screen: usize) -> XResult<Self> {
        let atom = |name: &str| -> XResult<u32> {
            Ok(conn.intern_atom(false, name.as_bytes())?.reply()?.atom)
        };
        Ok(Self {
            root: conn.setup().roots[screen].root,
            protocols: atom("WM_PROTOCOLS")?,
            delete: atom("WM_DELETE_WINDOW")?,
            net_wm_name: atom("_NET_WM_NAME")?,
            net_wm_state: atom("_NET_WM_STATE")?,
            net_wm_ping: atom("_NET_WM_PING")?,
            conn,
        })
    }

    /// Without a window manager, the application's top-level windows are the root's children.
    fn top_level(&self) -> XResult<Vec<Window>> {
        Ok(self.conn.query_tree(self.root)?.reply()?.children)
    }

    fn title(&self, window: Window) -> String {
        [self.net_wm_name, AtomEnum::WM_NAME.into()]
            .into_iter()
            .filter_map(|name| {
                let reply = self
                    .conn
                    .get_property(false, window, name, AtomEnum::ANY, 0, 1024)
                    .ok()?
                    .reply()
                    .ok()?;
                Some(String::from_utf8_lossy(&reply.value).into_owned())
            })
            .find(|title| !title.is_empty())
            .unwrap_or_default()
    }

    /// A 32-bit list property (atoms, windows); empty when absent or unreadable.
    fn window_property(&self, window: Window, name: u32, kind: u32) -> Vec<u32> {
        self.conn
            .get_property(false, window, name, kind, 0, 64)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .and_then(|reply| reply.value32().map(Iterator::collect))
            .unwrap_or_default()
    }

    fn atom_name(&self, atom: u32) -> String {
        self.conn
            .get_atom_name(atom)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .map_or_else(
                || atom.to_string(),
                |reply| String::from_utf8_lossy(&reply.name).into_owned(),
            )
    }

    fn accepts_close(&self, window: Window) -> bool {
        self.window_property(window, self.protocols, AtomEnum::ATOM.into())
            .contains(&self.delete)
    }

    fn viewable(&self, window: Window) -> bool {
        self.conn
            .get_window_attributes(window)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .is_some_and(|attributes| attributes.map_state == MapState::VIEWABLE)
    }

    /// Pings `window` as a window manager does and waits up to `timeout` for the answer,
    /// which the application sends to the root window from its event loop.
    fn ping(&self, window: Window, timeout: Duration) -> XResult<()> {
        if !self
            .window_property(window, self.protocols, AtomEnum::ATOM.into())
            .contains(&self.net_wm_ping)
        {
            return Err(format!("window {window:#x} does not take _NET_WM_PING").into());
        }
        self.conn.change_window_attributes(
            self.root,
            &ChangeWindowAttributesAux::new().event_mask(EventMask::STRUCTURE_NOTIFY),
        )?;
        // The answer carries the ping's timestamp back: a value of our own marks ours.
        let mark = std::process::id();
        let ping = ClientMessageEvent::new(
            32,
            window,
            self.protocols,
            [self.net_wm_ping, mark, window, 0, 0],
        );
        self.conn
            .send_event(false, window, EventMask::NO_EVENT, ping)?;
        self.conn.flush()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.conn.poll_for_event()? {
                Some(Event::ClientMessage(answer))
                    if answer.window == self.root
                        && answer.data.as_data32()[..2] == [self.net_wm_ping, mark] =>
                {
                    return Ok(());
                }
                Some(_) => {}
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        Err(format!("window {window:#x} did not answer _NET_WM_PING within {timeout:?}").into())
    }

    /// Sends the close request and waits until the server has handled it: requests still
    /// unread when a client disconnects are dropped, and this connection closes right after
    /// (a flush alone lost about one close request in three on Xvfb).
    fn close(&self, window: Window) -> XResult<()> {
        let request = ClientMessageEvent::new(
            32,
            window,
            self.protocols,
            [self.delete, CURRENT_TIME, 0, 0, 0],
        );
        self.conn
            .send_event(false, window, EventMask::NO_EVENT, request)?;
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}
