#!/bin/sh
# Makes the screenshots in this directory: the Tools menu entry and the plugin's dialog in
# real OBS under Xvfb, OBS 29.0.2 (Debian 12, Qt 5) in English and OBS 32.2.2 (the Debian
# sid root, Qt 6) in German, each streaming through the plugin after one server switch; and
# OBS 29.0.2's Settings -> Stream page with lossless streaming on for the listed Twitch service.
#
# The test tests/obs_screenshots.rs drives OBS (xdotool keys, ImageMagick screenshots) and
# writes here when OBS_GOAWAY_SCREENSHOTS names this directory. Needs what the OBS tests need
# (root, obs-studio, xvfb, the sid root from .ci/sid-root.sh) plus xdotool and imagemagick.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
cargo build --release --lib
OBS_GOAWAY_SCREENSHOTS="$here" cargo test --release --test obs_screenshots
ls -l "$here"/*.png
