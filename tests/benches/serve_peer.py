"""The serve benchmark's Python peers: the same minimal HTTP/1.1 responder
as guest/examples/http.rs (read the request head, answer 200 with a line
naming the request, `Connection: close`), served two ways:

  fork     socketserver.ForkingTCPServer: a forked process per connection
  prefork  a pre-forked multiprocessing pool: N processes accepting on one
           shared listener, each handling its connections itself

Usage: python3 serve_peer.py fork|prefork PORT [PROCESSES]
Prints "ready" on stdout once listening; runs until killed.
"""

import multiprocessing
import os
import socket
import socketserver
import sys

MAX_HEAD = 8192


def respond(sock, status, body):
    body = body.encode()
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    sock.sendall(head + body)


def handle(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        if len(head) > MAX_HEAD:
            return respond(sock, "431 Request Header Fields Too Large", "the request head is over 8 KiB\n")
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    words = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(words) == 3 and words[2].startswith("HTTP/1."):
        respond(sock, "200 OK", f"Hello from a wasmproc sandbox: {words[0]} {words[1]}\n")
    else:
        respond(sock, "400 Bad Request", "not an HTTP/1.x request line\n")


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        handle(self.request)


class Forking(socketserver.ForkingTCPServer):
    allow_reuse_address = True
    request_queue_size = 1024


def prefork_worker(listener):
    while True:
        conn, _ = listener.accept()
        try:
            handle(conn)
        except OSError:
            pass
        finally:
            conn.close()


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "fork":
        server = Forking(("127.0.0.1", port), Handler)
        print("ready", flush=True)
        server.serve_forever()
    elif mode == "prefork":
        processes = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1024)
        workers = [
            multiprocessing.Process(target=prefork_worker, args=(listener,), daemon=True)
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        print("ready", flush=True)
        for worker in workers:
            worker.join()
    else:
        sys.exit(f"unknown mode {mode}: fork or prefork")


if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    main()
