#!/usr/bin/env python3
"""Open loopback sockets and run nmap only against 127.0.0.1/::1 on exactly those ports.
env: N open TCP listeners, C bound-but-not-listening TCP ports (closed), U bound UDP sockets,
FAM=4|6, BANNER=text sent on accept. PORTS/TPORTS/UPORTS placeholders in argv."""
import socket, subprocess, sys, threading, os
n, c, u = int(os.environ.get("N", "2")), int(os.environ.get("C", "0")), int(os.environ.get("U", "0"))
fam = socket.AF_INET6 if os.environ.get("FAM") == "6" else socket.AF_INET
host = "::1" if fam == socket.AF_INET6 else "127.0.0.1"
banner = os.environ.get("BANNER", "")
lst, closed, udp = [], [], []
for _ in range(n):
    s = socket.socket(fam); s.bind((host, 0)); s.listen(16); lst.append(s)
for _ in range(c):
    s = socket.socket(fam); s.bind((host, 0)); closed.append(s)
for _ in range(u):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, 0)); udp.append(s)
def serve(s):
    while True:
        try: conn, _ = s.accept()
        except OSError: return
        if banner:
            try: conn.sendall(banner.encode() + b"\r\n")
            except OSError: pass
        threading.Timer(5, conn.close).start()
for s in lst: threading.Thread(target=serve, args=(s,), daemon=True).start()
tp = sorted(s.getsockname()[1] for s in lst + closed)
up = sorted(s.getsockname()[1] for s in udp)
tports = ",".join(map(str, tp)); uports = ",".join(map(str, up))
both = ",".join(x for x in ["T:" + tports if tp else "", "U:" + uports if up else ""] if x)
args = [a.replace("TPORTS", tports).replace("UPORTS", uports).replace("PORTS", both) for a in sys.argv[1:]]
cmd = ["nmap"] + args + [host]
print(" ".join(cmd), file=sys.stderr)
r = subprocess.run(cmd, stdout=subprocess.PIPE)
sys.stdout.buffer.write(r.stdout)
