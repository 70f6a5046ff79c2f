#!/usr/bin/env bash
# Publishes a large generated FLV (60 s of 720p at 8 Mb/s) as fast as possible to a local
# nginx-rtmp, alternately with `goaway publish` and `ffmpeg -c copy -f flv`, and prints the
# throughput and CPU seconds of each and their ratios. Needs ffmpeg, nginx and
# libnginx-mod-rtmp. Usage: benches/publish-vs-ffmpeg.sh [runs-per-tool]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet
goaway=target/release/goaway
big=$work/big.flv
echo "generating 60 s of 1280x720 H.264 at 8 Mb/s + AAC ..." >&2
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 \
    -c:v libx264 -preset ultrafast -b:v 8M -maxrate 8M -bufsize 16M -g 60 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -f flv "$big"
size=$(stat -c %s "$big")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off; master_process off; error_log $work/error.log warn; pid $work/nginx.pid;
events { worker_connections 64; }
rtmp { server { listen 127.0.0.1:$port; chunk_size 4096; application live { live on; } } }
CONF
nginx -c "$work/nginx.conf" -p "$work" &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

# Runs "$@", appends "wall user sys" (seconds) to the file named by $1.
measure() {
    local out=$1; shift
    local TIMEFORMAT='%R %U %S'
    { time "$@" >/dev/null 2>&1; } 2>>"$out"
}

for i in $(seq "$runs"); do
    measure "$work/goaway.times" "$goaway" publish -q "$big" "rtmp://127.0.0.1:$port/live/bench-g$i"
    measure "$work/ffmpeg.times" ffmpeg -hide_banner -loglevel error -i "$big" -c copy -f flv "rtmp://127.0.0.1:$port/live/bench-f$i"
done

python3 - "$size" "$work/goaway.times" "$work/ffmpeg.times" <<'PY'
import sys
size = int(sys.argv[1])
def load(path):
    rows = [list(map(float, l.split())) for l in open(path) if l.strip()]
    wall = sorted(r[0] for r in rows)[len(rows) // 2]
    cpu = sorted(r[1] + r[2] for r in rows)[len(rows) // 2]
    return wall, cpu
g, f = load(sys.argv[2]), load(sys.argv[3])
mb = size / 1e6
print(f"input: {mb:.1f} MB, median of {sum(1 for _ in open(sys.argv[2]))} runs each, same nginx-rtmp")
print(f"{'':8} {'wall s':>8} {'MB/s':>9} {'CPU s':>8} {'CPU s/GB':>9}")
for name, (wall, cpu) in (("goaway", g), ("ffmpeg", f)):
    print(f"{name:8} {wall:8.3f} {mb / wall:9.1f} {cpu:8.3f} {cpu / mb * 1000:9.2f}")
print(f"throughput ratio goaway/ffmpeg: {f[0] / g[0]:.2f}x (target >= 2x)")
print(f"CPU per byte ratio goaway/ffmpeg: {g[1] / f[1]:.2f} (target <= 0.5)")
PY
