"""Static front end of the drill stack; exits cleanly on SIGTERM."""

import functools
import os
import signal
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


def main():
    port = int(os.environ.get("FRONTEND_PORT", "18081"))
    handler = functools.partial(SimpleHTTPRequestHandler, directory="/app")
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever(poll_interval=0.1)
    server.server_close()


if __name__ == "__main__":
    main()
