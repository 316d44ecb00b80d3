"""What the Python benchmarks share: free ports on 127.0.0.1, waiting for a node to listen, and
stopping the nodes they started. Standard library only."""
import socket
import subprocess
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc):
    """Until `proc` listens on `port` (20 s at most); fails if it exits first."""
    for _ in range(400):
        assert proc.poll() is None, f"the node on port {port} exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the node on port {port} did not listen")


def stop(nodes):
    """SIGTERM to every node, then SIGKILL to any still running after 30 s."""
    for node in nodes:
        node.terminate()
    for node in nodes:
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            node.kill()
