"""A deterministic OpenAI-compatible model server for scripts/fuzz-api.sh (stdlib only).

POST /v1/chat/completions answers one short post built from the last user message's length;
POST /v1/embeddings answers one small vector per input. It binds 127.0.0.1 only and serves
until killed. The fuzzer exercises crier's API, not a model: this keeps `rewrite` and
`compose` answering (a server with no model answers them 503, which the fuzzer counts as a
server error) without a model download in the fuzz run. The real-model peer is
scripts/peers/llm.sh.
"""

import hashlib
import http.server
import json
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})
        self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(min(length, 4 << 20)) or b"{}")
        except ValueError:
            return self._json(400, {"error": {"message": "bad json"}})
        if self.path == "/v1/chat/completions":
            messages = body.get("messages") or []
            size = sum(len(str(m.get("content", ""))) for m in messages)
            text = f"A short, friendly post about what you asked ({size % 97} notes)."
            return self._json(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
            })
        if self.path == "/v1/embeddings":
            inputs = body.get("input") or []
            if isinstance(inputs, str):
                inputs = [inputs]
            data = []
            for i, text in enumerate(inputs):
                digest = hashlib.sha256(str(text).encode()).digest()
                data.append({"object": "embedding", "index": i,
                             "embedding": [b / 255.0 for b in digest[:16]]})
            return self._json(200, {"object": "list", "data": data, "model": "fake"})
        self._json(404, {"error": {"message": "not found"}})


if __name__ == "__main__":
    port = int(sys.argv[1])
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
