"""`gqa serve` end to end on SmolLM2 with the official `openai` client.

    test_serve.py GQA_BINARY MODEL

Starts servers on 127.0.0.1 with --port 0 and checks: completion, chat and
streaming answers are well formed; greedy output equals `gqa run`'s; parallel
clients get exactly their one-at-a-time answers; clients that disconnect
mid-stream free their sequences; an exhausted KV budget gives 429 with
Retry-After and then recovers; every kind of malformed request gets the right
4xx and an OpenAI-style error object while the server keeps serving; a slow
client does not hold up others; 401 without the API key; per-request timeout;
SIGTERM exits 0 (under ASan: without a leak); /metrics ends at 0 KV blocks in
use. Every loop is bounded in count and time. Exit 77 (skip) without the
model unless GQA_REQUIRE_MODEL=1.
"""

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

GQA, MODEL = sys.argv[1], os.environ.get("GQA_MODEL_PATH") or sys.argv[2]
# Under sanitizers everything is several times slower: fewer tokens there.
SLOW = float(os.environ.get("GQA_TEST_SLOWDOWN", "1"))

fails = 0
# A prompt SmolLM2 continues for a long time (greedy): for requests that must
# still be running when the test acts on them.
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


def check(name, ok, detail=""):
    global fails
    if ok:
        print(f"ok   {name}")
    else:
        fails += 1
        print(f"FAIL {name} {detail}")
    sys.stdout.flush()


if not os.path.isfile(MODEL):
    if os.environ.get("GQA_REQUIRE_MODEL") == "1":
        print(f"FAIL: GQA_REQUIRE_MODEL=1 but {MODEL} is absent (run scripts/fetch_model.sh)")
        sys.exit(1)
    print(f"SKIP: {MODEL} is absent (run scripts/fetch_model.sh)")
    sys.exit(77)

try:
    import openai
except ImportError:
    print("FAIL: the openai package is missing: bash scripts/setup_venv.sh .venv-serve "
          "tests/serve/requirements.txt (scripts/test.sh does it)")
    sys.exit(1)


class Server:
    """A `gqa serve` process on a free loopback port."""

    def __init__(self, *args):
        self.log = open(f"serve-{os.getpid()}-{time.time_ns()}.log", "w+")
        self.proc = subprocess.Popen(
            [GQA, "serve", "-m", MODEL, "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60 * SLOW)
        line = self.proc.stdout.readline() if ready else ""
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+) \(model (\S+),", line)
        if not m:
            self.proc.kill()
            raise SystemExit(f"FAIL: the server did not start: {line!r} {self.stderr()}")
        self.port, self.model = int(m.group(1)), m.group(2)
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def stderr(self):
        self.log.seek(0)
        return self.log.read()

    def client(self, key="none", **kw):
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0,
                             timeout=120 * SLOW, **kw)

    def raw(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers, parsed JSON or text) with http.client."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout * SLOW)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            return r.status, dict(r.getheaders()), json.loads(text)
        except ValueError:
            return r.status, dict(r.getheaders()), text

    def metrics(self):
        _, _, text = self.raw("GET", "/metrics")
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def wait_idle(self, seconds=20):
        """Metrics once no request is active or queued (bounded wait)."""
        end = time.time() + seconds * SLOW
        while True:
            m = self.metrics()
            if (m["gqa_sequences_active"] == 0 and m["gqa_sequences_queued"] == 0) \
                    or time.time() > end:
                return m
            time.sleep(0.1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.proc.stdout.close()
        err = self.stderr()
        self.log.close()
        os.unlink(self.log.name)
        return rc, err


def gqa_run(prompt, n, chatml=False):
    cmd = [GQA, "run", "-m", MODEL, "-p", prompt, "-n", str(n), "--temp", "0"]
    out = subprocess.run(cmd + (["--chatml"] if chatml else []), capture_output=True,
                         text=True, timeout=120 * SLOW, check=True).stdout
    return out if chatml else out[len(prompt):]


def is_error_object(body, status_type=None):
    e = body.get("error") if isinstance(body, dict) else None
    return (isinstance(e, dict) and isinstance(e.get("message"), str) and e["message"]
            and isinstance(e.get("type"), str) and "param" in e and "code" in e
            and (status_type is None or e["type"] == status_type))


# ------------------------------------------------------------- answers ----
def test_answers(s):
    c = s.client()
    models = c.models.list()
    check("models: one model, the served file", [m.id for m in models.data] == [s.model])

    n = int(8 if SLOW == 1 else 6)
    r = c.completions.create(model=s.model, prompt="The capital of France is", max_tokens=n,
                             temperature=0)
    want_c = gqa_run("The capital of France is", n)
    check("completion equals gqa run (greedy)", r.choices[0].text == want_c,
          f"{r.choices[0].text!r} vs {want_c!r}")
    check("completion shape", r.object == "text_completion" and r.id.startswith("cmpl-")
          and r.choices[0].index == 0 and r.choices[0].finish_reason == "length"
          and r.choices[0].logprobs is None and r.model == s.model, str(r))
    check("completion usage", r.usage.prompt_tokens == 5 and r.usage.completion_tokens == n
          and r.usage.total_tokens == 5 + n, str(r.usage))

    q = "What is the capital of France?"
    r = c.chat.completions.create(model=s.model, messages=[{"role": "user", "content": q}],
                                  max_tokens=24, temperature=0)
    want = gqa_run(q, 24, chatml=True)
    got = r.choices[0].message.content
    check("chat equals gqa run --chatml (greedy)", got == want, f"{got!r} vs {want!r}")
    check("chat shape", r.object == "chat.completion" and r.id.startswith("chatcmpl-")
          and r.choices[0].message.role == "assistant"
          and r.choices[0].finish_reason in ("stop", "length"), str(r))

    chunks = list(c.chat.completions.create(
        model=s.model, messages=[{"role": "user", "content": q}], max_tokens=24,
        temperature=0, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    check("chat stream: the same text", text == got, f"{text!r}")
    check("chat stream: chunk objects, role first, finish last, usage at the end",
          all(ch.object == "chat.completion.chunk" for ch in chunks)
          and chunks[0].choices[0].delta.role == "assistant"
          and chunks[-2].choices[0].finish_reason == r.choices[0].finish_reason
          and chunks[-1].choices == [] and chunks[-1].usage.completion_tokens
          == r.usage.completion_tokens, str(chunks[-2:]))

    stream = c.completions.create(model=s.model, prompt="The capital of France is",
                                  max_tokens=n, temperature=0, stream=True)
    text = "".join(ch.choices[0].text for ch in stream)
    check("completion stream: the same text", text == want_c, repr(text))

    stop = c.completions.create(model=s.model, prompt="The capital of France is",
                                max_tokens=n, temperature=0, stop=["."])
    check("stop string ends the text before it", stop.choices[0].text == " Paris"
          and stop.choices[0].finish_reason == "stop", repr(stop.choices[0].text))


def test_parallel(s):
    """N clients at once get exactly their one-at-a-time answers."""
    c = s.client()
    system = "You are a terse assistant. " * 12  # a shared prefix over 64 tokens
    questions = ["Name a color.", "What is 2+2?", "Name a fruit.", "Say hello.",
                 "What is the capital of Italy?", "Count to three. " * 20]
    n = 12 if SLOW == 1 else 6

    def ask(q):
        r = c.chat.completions.create(model=s.model, max_tokens=n, temperature=0,
                                      messages=[{"role": "system", "content": system},
                                                {"role": "user", "content": q}])
        return r.choices[0].message.content, r.usage.prompt_tokens_details

    alone = [ask(q)[0] for q in questions]
    together = [None] * len(questions)
    cached = [None] * len(questions)

    def worker(i):
        together[i], cached[i] = ask(questions[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180 * SLOW)
    check(f"{len(questions)} parallel clients get their one-at-a-time answers",
          together == alone, f"\n  alone    {alone}\n  together {together}")
    check("a shared system prompt is reused (cached prompt tokens)",
          any(d is not None and d.cached_tokens >= 64 for d in cached), str(cached))
    m = s.wait_idle()
    check("requests were batched (more than one active at once)",
          m["gqa_sequences_active_max"] >= 2, str(m["gqa_sequences_active_max"]))
    check("afterwards: nothing active, nothing reserved, only the prefix cache holds blocks",
          m["gqa_sequences_active"] == 0 and m["gqa_kv_blocks_reserved"] == 0
          and m["gqa_kv_blocks_used"] <= m["gqa_prefix_cache_blocks"], str(m))


# -------------------------------------------------------------- faults ----
def test_auth(s, key):
    st, _, body = s.raw("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 1})
    check("no API key: 401 with an error object", st == 401 and is_error_object(body), str(body))
    st, _, body = s.raw("POST", "/v1/completions", {"prompt": "hi", "max_tokens": 1},
                        {"Authorization": "Bearer wrong"})
    check("wrong API key: 401", st == 401 and is_error_object(body), str(body))
    try:
        s.client("wrong").completions.create(model=s.model, prompt="hi", max_tokens=1)
        check("openai client with a wrong key raises AuthenticationError", False)
    except openai.AuthenticationError:
        check("openai client with a wrong key raises AuthenticationError", True)
    st, _, _ = s.raw("GET", "/health")
    check("/health needs no key", st == 200)
    r = s.client(key).completions.create(model=s.model, prompt="hi", max_tokens=2)
    check("the right key is served", len(r.choices) == 1)


def test_malformed(s, key):
    auth = {"Authorization": f"Bearer {key}"}
    long_prompt = "hello " * 300  # more tokens than --ctx 256
    cases = [
        ("invalid JSON", "POST", "/v1/completions", b'{"prompt": "hi",', 400, None),
        ("body not an object", "POST", "/v1/completions", [1, 2], 400, None),
        ("empty body", "POST", "/v1/completions", b"", 400, None),
        ("missing prompt", "POST", "/v1/completions", {"max_tokens": 3}, 400, "prompt"),
        ("prompt of the wrong type", "POST", "/v1/completions", {"prompt": 5}, 400, "prompt"),
        ("max_tokens a string", "POST", "/v1/completions",
         {"prompt": "hi", "max_tokens": "ten"}, 400, "max_tokens"),
        ("max_tokens 0", "POST", "/v1/completions", {"prompt": "hi", "max_tokens": 0}, 400,
         "max_tokens"),
        ("max_tokens beyond the context", "POST", "/v1/completions",
         {"prompt": "hi", "max_tokens": 100000}, 400, None),
        ("prompt longer than the context", "POST", "/v1/completions",
         {"prompt": long_prompt, "max_tokens": 1}, 400, "prompt"),
        ("temperature a string", "POST", "/v1/completions",
         {"prompt": "hi", "temperature": "hot"}, 400, "temperature"),
        ("temperature out of range", "POST", "/v1/completions",
         {"prompt": "hi", "temperature": 7}, 400, "temperature"),
        ("stream not a boolean", "POST", "/v1/completions", {"prompt": "hi", "stream": "yes"},
         400, "stream"),
        ("n = 2", "POST", "/v1/completions", {"prompt": "hi", "n": 2}, 400, "n"),
        ("stop of the wrong type", "POST", "/v1/completions", {"prompt": "hi", "stop": 3}, 400,
         "stop"),
        ("token id out of range", "POST", "/v1/completions", {"prompt": [1, 99999999]}, 400,
         None),
        ("missing messages", "POST", "/v1/chat/completions", {"max_tokens": 2}, 400,
         "messages"),
        ("messages not an array", "POST", "/v1/chat/completions", {"messages": "hi"}, 400,
         "messages"),
        ("message without a role", "POST", "/v1/chat/completions",
         {"messages": [{"content": "hi"}]}, 400, "messages"),
        ("message with an unknown role", "POST", "/v1/chat/completions",
         {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages"),
        ("body over --max-body", "POST", "/v1/completions",
         {"prompt": "x" * 10000, "max_tokens": 1}, 413, None),
        ("unknown route", "GET", "/v2/nothing", None, 404, None),
        ("unknown route (POST)", "POST", "/v1/embeddings", {"input": "hi"}, 404, None),
        ("GET on a POST route", "GET", "/v1/completions", None, 405, None),
        ("DELETE on a GET route", "DELETE", "/health", None, 405, None),
    ]
    for name, method, path, body, want, param in cases:
        st, headers, got = s.raw(method, path, body, auth)
        ok = st == want and is_error_object(got) and (param is None or
                                                       got["error"]["param"] == param)
        if want == 405:
            ok = ok and "Allow" in headers
        check(f"malformed: {name} -> {want}", ok, f"got {st} {got}")
    st, _, body = s.raw("POST", "/v1/completions",
                        {"prompt": "hi", "max_tokens": 100000}, auth)
    check("context_length_exceeded code", st == 400 and
          body["error"]["code"] == "context_length_exceeded", str(body))
    r = s.client(key).completions.create(model=s.model, prompt="The capital of France is",
                                         max_tokens=3, temperature=0)
    check("still serving after the malformed requests", r.choices[0].text.startswith(" Paris"),
          r.choices[0].text)


def stream_request(s, key, body, timeout=60):
    """Open a streaming request with http.client; returns (conn, response)."""
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=timeout * SLOW)
    c.request("POST", "/v1/completions", body=json.dumps(dict(body, stream=True)).encode(),
              headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    return c, c.getresponse()


def test_disconnect(s, key):
    m0 = s.metrics()
    c, r = stream_request(s, key, {"prompt": COUNTING, "max_tokens": 200, "temperature": 0})
    first = r.readline() + r.readline()  # one SSE event
    check("stream starts with a data: event", r.status == 200 and first.startswith(b"data: {"),
          repr(first))
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    # a non-stream request whose client goes away at once (greedy, so that it is still
    # counting when the server notices; a sampled reply could reach EOS first)
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    body = json.dumps({"prompt": COUNTING, "max_tokens": 200, "temperature": 0}).encode()
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nAuthorization: Bearer " + key.encode() + b"\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(0.3)
    sock.close()
    # the server notices a closed socket at its next write or poll (0.25 s): wait, bounded
    end = time.time() + 10 * SLOW
    while True:
        m = s.wait_idle()
        cancelled = m['gqa_requests_total{reason="cancelled"}'] - \
            m0['gqa_requests_total{reason="cancelled"}']
        if cancelled >= 2 or time.time() > end:
            break
        time.sleep(0.1)
    reasons = {k: v - m0.get(k, 0) for k, v in m.items() if k.startswith("gqa_requests_total")}
    check("clients that went away were cancelled", cancelled == 2, str(reasons))
    check("their sequences were freed (0 KV blocks used)", m["gqa_kv_blocks_used"] == 0,
          str(m["gqa_kv_blocks_used"]))


def test_busy(s, key):
    """More requests than the budget and the queue hold: 429s, then recovery."""
    results = []
    lock = threading.Lock()
    go = threading.Barrier(8)

    def worker():
        go.wait(30)
        st, headers, body = s.raw("POST", "/v1/completions",
                                  {"prompt": COUNTING, "max_tokens": 100, "temperature": 0},
                                  {"Authorization": f"Bearer {key}"},
                                  timeout=180)
        with lock:
            results.append((st, headers.get("Retry-After"), body))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(240 * SLOW)
    codes = sorted(r[0] for r in results)
    busy = [r for r in results if r[0] == 429]
    check("budget exhausted: some requests get 429, the admitted ones 200",
          len(results) == 8 and busy and codes.count(200) >= 2
          and set(codes) <= {200, 429}, str(codes))
    check("429 has Retry-After and a rate_limit_error object",
          all(r[1] and is_error_object(r[2], "rate_limit_error") for r in busy),
          str(busy[:1]))
    m = s.wait_idle()
    check("metrics count the refusals", m['gqa_requests_rejected_total{reason="busy"}']
          == len(busy), str(m['gqa_requests_rejected_total{reason="busy"}']))
    r = s.client(key).completions.create(model=s.model, prompt="The capital of France is",
                                         max_tokens=3, temperature=0)
    check("recovers: a request after the burst is served", r.choices[0].text.startswith(" Paris"))


def test_slow_client(s, key):
    """A client that sends its body over ~1.5 s does not hold up others."""
    body = json.dumps({"prompt": "The capital of France is", "max_tokens": 3,
                       "temperature": 0}).encode()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=60 * SLOW)
    sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nAuthorization: Bearer " + key.encode() + b"\r\nConnection: close"
                 b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
    t0 = time.time()
    r = s.client(key).completions.create(model=s.model, prompt="The capital of France is",
                                         max_tokens=3, temperature=0)
    fast = time.time() - t0
    for i in range(0, len(body), 10):
        sock.sendall(body[i:i + 10])
        time.sleep(1.5 / (len(body) / 10))
    reply = b""
    end = time.time() + 60 * SLOW
    while b"}}" not in reply and time.time() < end:
        part = sock.recv(65536)
        if not part:
            break
        reply += part
    sock.close()
    check("another client is served while a slow one trickles its body",
          r.choices[0].text.startswith(" Paris") and fast < 1.5 * SLOW + 10, f"{fast:.2f} s")
    check("the slow client gets its answer", reply.startswith(b"HTTP/1.1 200")
          and b" Paris" in reply, repr(reply[:200]))


def test_timeout_and_shutdown():
    s = Server("--kv-budget", "96MiB", "--timeout", "2", "--shutdown-grace", "0",
               "--prefix-cache", "0")
    st, _, body = s.raw("POST", "/v1/completions",
                        {"prompt": COUNTING, "max_tokens": 3000, "temperature": 0}, timeout=60)
    check("a request past --timeout gets 504 and an error object",
          st == 504 and is_error_object(body), f"{st} {body}")
    c, r = stream_request(s, "none", {"prompt": COUNTING, "max_tokens": 3000})
    r.readline()
    rc, err = s.stop()
    rest = r.read()
    c.close()
    check("SIGTERM ends an open stream with [DONE]", rest.rstrip().endswith(b"data: [DONE]"),
          repr(rest[-200:]))
    check("SIGTERM: exit 0, nothing on stderr but the notice", rc == 0 and "ERROR" not in err
          and "runtime error" not in err, f"rc {rc}: {err[-2000:]}")


def test_cli_errors():
    """Bad options: one error line and a non-zero exit, nothing served."""
    cases = [(["--port", "70000"], 2, "--port"), (["--kv-budget", "lots"], 2, "--kv-budget"),
             (["--prefill-chunk", "7"], 2, "--prefill-chunk"), (["--bogus"], 2, "--bogus"),
             (["--host", "localhost.invalid"], 1, "--host"),
             (["-m", "/nonexistent.gguf"], 1, "cannot load the model")]
    for args, rc, word in cases:
        argv = [GQA, "serve"] + (args if args[0] == "-m" else ["-m", MODEL] + args)
        p = subprocess.run(argv + ["--port", "0"] if "--port" not in args else argv,
                           capture_output=True, text=True, timeout=60 * SLOW)
        lines = p.stderr.strip().splitlines()
        check(f"gqa serve {' '.join(args)}: exit {rc}, one error line naming {word}",
              p.returncode == rc and len(lines) == 1 and "error" in lines[0]
              and word in lines[0] and p.stdout == "", f"{p.returncode} {p.stderr!r}")


def main():
    t0 = time.time()
    test_cli_errors()
    s = Server("--kv-budget", "64MiB")
    try:
        test_answers(s)
        test_parallel(s)
    finally:
        rc, err = s.stop()
    check("server 1: SIGTERM exits 0 without sanitizer reports",
          rc == 0 and "ERROR" not in err and "runtime error" not in err,
          f"rc {rc}: {err[-2000:]}")

    key = "test-key-123"
    # 8-block requests (prompt + 100 tokens) in a 36-block budget: 4 fit, 1 waits
    block = 16 * 23040
    s = Server("--kv-budget", str(36 * block), "--max-queue", "1", "--prefix-cache", "0",
               "--api-key", key, "--max-body", "4096", "--ctx", "256")
    try:
        test_auth(s, key)
        test_malformed(s, key)
        test_disconnect(s, key)
        test_busy(s, key)
        test_slow_client(s, key)
        m = s.wait_idle()
        check("server 2 at the end: 0 KV blocks used, 0 reserved, nothing active",
              m["gqa_kv_blocks_used"] == 0 and m["gqa_kv_blocks_reserved"] == 0
              and m["gqa_sequences_active"] == 0, str(m))
    finally:
        rc, err = s.stop()
    check("server 2: SIGTERM exits 0 without sanitizer reports",
          rc == 0 and "ERROR" not in err and "runtime error" not in err,
          f"rc {rc}: {err[-2000:]}")
    test_timeout_and_shutdown()
    print(f"{'FAIL' if fails else 'ok'}: {fails} failure(s), {time.time() - t0:.1f} s")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
