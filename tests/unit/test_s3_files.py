"""corpus.io.files on s3:// against a real S3-protocol server (SeaweedFS on 127.0.0.1): listing, reading,
writing, the object-store commit (marker last), uploads, and the settings taken from the AWS environment."""

from __future__ import annotations

import pytest

from corpus.io import files


def test_settings_come_from_the_aws_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9999/")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert files.s3_settings() == {"region": "eu-west-1", "endpoint_override": "127.0.0.1:9999", "scheme": "http"}
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert files.s3_settings() == {"region": "us-east-1"}  # AWS itself: no override; credentials never read here


def test_write_list_read_and_remove(s3_server):
    files.write_text("s3://forge/t1/a/one.jsonl", '{"text": "one"}\n')
    files.write_text("s3://forge/t1/a/_SUCCESS", "")
    files.write_text("s3://forge/t1/b/two.warc.gz", "x")
    found = files.list_files("s3://forge/t1", [".jsonl", ".warc.gz"])
    assert [f.path for f in found] == ["s3://forge/t1/a/one.jsonl", "s3://forge/t1/b/two.warc.gz"]
    assert files.read_text("s3://forge/t1/a/one.jsonl") == '{"text": "one"}\n'
    assert files.exists("s3://forge/t1/a/one.jsonl") and not files.exists("s3://forge/t1/none")
    with files.open_input("s3://forge/t1/a/one.jsonl") as f:
        assert f.read(7) == b'{"text"'
    files.remove("s3://forge/t1/b")
    assert not files.exists("s3://forge/t1/b/two.warc.gz")
    with pytest.raises(files.InputError, match="s3://forge/missing: no such file or folder"):
        files.list_files("s3://forge/missing")


def test_commit_dir_replaces_the_output_marker_last(s3_server):
    final = "s3://forge/run/filter"
    for round_ in ("old", "new"):
        tmp = files.temporary_sibling(final)
        files.write_text(f"{tmp}/data/part-0.parquet", round_)
        files.write_text(f"{tmp}/rejects/part-0.parquet", round_)
        files.write_text(f"{tmp}/_SUCCESS", "")
        files.commit_dir(tmp, final)
        assert files.read_text(f"{final}/data/part-0.parquet") == round_
        assert files.exists(f"{final}/_SUCCESS") and not files.exists(tmp)
    listed = [f.path for f in files.list_files("s3://forge/run")]
    assert listed == ["s3://forge/run/filter/data/part-0.parquet", "s3://forge/run/filter/rejects/part-0.parquet"]


def test_upload_and_local_copy(s3_server, tmp_path):
    local = tmp_path / "model.bin"
    local.write_bytes(b"\x00model")
    files.upload(str(local), "s3://forge/models/model.bin")
    copy = files.local_copy("s3://forge/models/model.bin", str(tmp_path / "cache"))
    assert open(copy, "rb").read() == b"\x00model"


@pytest.mark.parametrize("store", ["local", "s3"])
def test_temporary_siblings_finds_a_killed_runs_unfinished_folders(store, s3_server, tmp_path):
    root = str(tmp_path) if store == "local" else "s3://forge/siblings"
    final = f"{root}/dedup"
    tmp, other = files.temporary_sibling(final), files.temporary_sibling(root + "/dedupe")  # another stage's
    for folder in (f"{tmp}/data", other, final):
        files.make_dirs(folder)
        files.write_text(f"{folder}/x", "x")
    assert files.temporary_siblings(final) == []  # not marked: it could be the user's, it is left alone
    files.write_marker(tmp, "stage", "dedup")  # the stage runner marks its temporary folder first
    assert files.temporary_siblings(final) == [tmp]
    assert files.temporary_siblings(f"{root}/filter") == []
    assert files.temporary_siblings(f"{root}/missing/dedup") == []


def test_relative_local_paths_resolve_against_the_drivers_folder(monkeypatch, tmp_path):
    """Executors get FORGE_BASE_DIR (the driver's working folder): a relative input path means the same file there
    as on the driver; absolute paths and URIs are unchanged."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hello")
    monkeypatch.chdir("/")
    monkeypatch.setenv(files.BASE_DIR_ENV, str(tmp_path))
    assert files.read_text("data/a.txt") == "hello"
    assert files.filesystem("data/a.txt")[1] == f"{tmp_path}/data/a.txt"
    assert files.filesystem("/etc/hostname")[1] == "/etc/hostname"
    monkeypatch.delenv(files.BASE_DIR_ENV)
    assert files.filesystem("data/a.txt")[1] == "data/a.txt"


class _Throttler:
    """An HTTP proxy in front of the S3 server that answers the first ``n`` requests with 503 SlowDown (as S3 and
    Common Crawl do under load) and forwards the rest unchanged (the Host header too, so signatures still hold)."""

    SLOW_DOWN = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )

    def __init__(self, upstream: str, n: int) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        host, port = upstream.split("://", 1)[1].split(":")
        proxy = self
        self.remaining, self.throttled, self.forwarded = n, 0, 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    throttle = proxy.remaining > 0
                    proxy.remaining -= throttle
                    proxy.throttled += throttle
                    proxy.forwarded += not throttle
                if throttle:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(proxy.SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(proxy.SLOW_DOWN)
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=30)
                conn.request(self.command, self.path, body=body or None, headers=dict(self.headers))
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header(
                    "Content-Length", resp.getheader("Content-Length") if self.command == "HEAD" else str(len(data))
                )
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_slow_down_answers_are_retried(s3_server, monkeypatch):
    """Listing (boto3, adaptive retries) and reading (pyarrow, standard retries) both get through a store that
    answers SlowDown several times in a row."""
    for i in range(3):
        files.write_text(f"s3://forge/throttled/warc/{i}.warc", "x" * (i + 1))
    proxy = _Throttler(s3_server.endpoint, n=3)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
        files.reset_s3()
        assert [(e.path, e.size) for e in files.list_files("s3://forge/throttled/warc", (".warc",))] == [
            (f"s3://forge/throttled/warc/{i}.warc", i + 1) for i in range(3)
        ]
        assert proxy.throttled == 3 and proxy.forwarded >= 1
        proxy.remaining = 3
        assert files.read_text("s3://forge/throttled/warc/2.warc") == "xxx"
        assert proxy.throttled == 6
    finally:
        proxy.close()
        files.reset_s3()
