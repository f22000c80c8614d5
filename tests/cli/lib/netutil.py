"""Small network helpers shared by the Python end-to-end tests."""
import socket


def free_port():
    """A loopback TCP port nobody listens on now (the kernel's choice)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
