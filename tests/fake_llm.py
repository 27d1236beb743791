"""A local HTTP server that speaks OpenAI's Chat Completions streaming format, for tests: it
records every request and answers from a queue of scripted turns."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, turns: list[dict[str, Any]]):
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                turn = fake.turns.pop(0) if fake.turns else {"text": "done"}
                if "status" in turn:
                    data = json.dumps({"error": {"message": turn.get("message", "failed"), "type": "x"}}).encode()
                    self.send_response(turn["status"])
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for chunk in fake.chunks(turn, body["model"]):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def chunks(turn: dict[str, Any], model: str):
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": model}
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        text = turn.get("text", "")
        for i in range(0, len(text), 5):  # text in small deltas, as a real server streams it
            yield {**base, "choices": [{"index": 0, "delta": {"content": text[i : i + 5]}, "finish_reason": None}]}
        for n, call in enumerate(turn.get("tool_calls", [])):
            args = json.dumps(call["args"])
            yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": n, "id": f"call_{n}_{len(args)}", "type": "function", "function": {"name": call["name"], "arguments": ""}}]}, "finish_reason": None}]}
            for i in range(0, len(args), 7):  # arguments split across chunks
                yield {**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": n, "function": {"arguments": args[i : i + 7]}}]}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if turn.get("tool_calls") else "stop"}]}
        usage = turn.get("usage", {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120})
        yield {**base, "choices": [], "usage": usage}

    def __enter__(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
