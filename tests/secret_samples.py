"""A seeded evaluation set for secret redaction: documents holding real-format secrets (random values in the exact
formats the issuers use) in docs prose, code, configs, shell sessions, URLs and titles, and documents holding
look-alikes that must be left alone (UUIDs, digests, commit ids, the example keys vendors publish, base64 image
data, placeholders). Generated at test and bench time, never committed.

``secret_documents(n)`` → documents with ``secrets`` (the planted values); ``lookalike_documents(n)`` → documents
whose every field must come back unchanged. ``measure(redact_document)`` gives recall and the false-positive rate.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid

ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def _s(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(rng: random.Random, data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _pem(rng: random.Random, kind: str) -> str:
    body = base64.b64encode(rng.randbytes(600)).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{lines}\n-----END {kind}PRIVATE KEY-----"


# each maker returns (text with the secret in context, [secret values that must not survive])
def _aws(rng):
    key, secret = "AKIA" + _s(rng, UPPER_DIGITS, 16), _s(rng, B64, 40)
    form = rng.choice(
        [
            f"[default]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\nregion = us-east-1",
            f'client = boto3.client("s3", aws_access_key_id="{key}",\n    aws_secret_access_key="{secret}")',
            f"export AWS_ACCESS_KEY_ID={key}\nexport AWS_SECRET_ACCESS_KEY={secret}",
        ]
    )
    return f"Configure the SDK before calling the API:\n\n{form}\n\nThen run the script.", [key, secret]


def _github(rng):
    token = rng.choice(["ghp_" + _s(rng, ALNUM, 36), "github_pat_" + _s(rng, ALNUM, 22) + "_" + _s(rng, ALNUM, 59)])
    form = rng.choice(
        [
            f"git clone https://{token}@github.com/acme/private-repo.git",
            f'headers = {{"Authorization": "token {token}"}}',
            f"GITHUB_TOKEN={token} gh pr list",
        ]
    )
    return f"To call the GitHub API from CI:\n{form}\nThe token needs the repo scope.", [token]


def _slack(rng):
    token = f"xoxb-{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-{_s(rng, ALNUM, 24)}"
    return (
        f"Post a message with the bot token:\ncurl -H 'Authorization: Bearer {token}' "
        f"https://slack.com/api/chat.postMessage -d channel=C123 -d text=hi"
    ), [token]


def _stripe(rng):
    key = "sk_live_" + _s(rng, ALNUM, rng.choice([24, 99]))
    return f"import stripe\nstripe.api_key = '{key}'\nstripe.Charge.create(amount=2000, currency='usd')", [key]


def _google(rng):
    key = "AIza" + _s(rng, URLSAFE, 35)
    return f'Maps JavaScript API: <script src="https://maps.googleapis.com/maps/api/js?key={key}"></script>', [key]


def _pem_doc(rng):
    pem = _pem(rng, rng.choice(["RSA ", "EC ", "OPENSSH ", ""]))
    body = pem.split("\n")[1]
    return f"Save the deploy key as id_deploy:\n\n{pem}\n\nand chmod 600 it.", [body]


def _jwt(rng):
    header = _b64url(rng, {"alg": "HS256", "typ": "JWT"})
    payload = _b64url(rng, {"sub": str(rng.randint(1, 10**9)), "name": "svc", "iat": rng.randint(1.6e9, 1.8e9)})
    token = f"{header}.{payload}.{_s(rng, URLSAFE, 43)}"
    return f"The session cookie was:\nsession={token}\nIt expires in one hour.", [token]


def _basic_auth(rng):
    user, pw = _s(rng, string.ascii_lowercase, 7), _s(rng, ALNUM + "!$%", 14)
    url = f"https://{user}:{pw}@db.internal.acme.io:5432/orders"
    return f"Connect with DATABASE_URL={url}\nand run the migrations.", [pw]


def _password(rng):
    pw = _s(rng, ALNUM, 6) + rng.choice("!#%&*") + _s(rng, ALNUM, 6)
    form = rng.choice(
        [
            f'password = "{pw}"',
            f"DB_PASSWORD: {pw}",
            f'"password": "{pw}"',
            f"conn = connect(user='admin', password='{pw}')",
            f"db_password={pw}",
        ]
    )
    return f"Settings for the staging database:\n{form}\n", [pw]


def _openai(rng):
    key = rng.choice(["sk-" + _s(rng, ALNUM, 48), "sk-proj-" + _s(rng, URLSAFE, 64)])
    return f'from openai import OpenAI\nclient = OpenAI(api_key="{key}")', [key]


def _azure(rng):
    key = base64.b64encode(rng.randbytes(64)).decode()
    conn = (
        f"DefaultEndpointsProtocol=https;AccountName=acme{rng.randint(1, 999)};AccountKey={key};"
        "EndpointSuffix=core.windows.net"
    )
    return f"Set AZURE_STORAGE_CONNECTION_STRING to\n{conn}\nbefore starting the worker.", [key]


MAKERS = [_aws, _github, _slack, _stripe, _google, _pem_doc, _jwt, _basic_auth, _password, _openai, _azure]
PROSE = [
    "This guide shows how to call the service from a small script.",
    "We hit this error in production last week; here is the config we used.",
    "Posted in #infra: the job failed again after the deploy.",
]


def secret_documents(n: int = 200, seed: int = 7) -> list[dict]:
    """Documents each holding one or two real-format secrets; about one in six also carries one in its url or
    title (a token in a query string, credentials in a URL)."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        makers = [MAKERS[i % len(MAKERS)]] + ([rng.choice(MAKERS)] if rng.random() < 0.3 else [])
        parts, secrets = [rng.choice(PROSE)], []
        for make in makers:
            text, values = make(rng)
            parts.append(text)
            secrets += values
        url, title = f"https://forum.example.net/t/{i}", f"Question {i}"
        if i % 6 == 0:
            token = "ghp_" + _s(rng, ALNUM, 36)
            url = f"https://api.acme.io/v1/items?access_token={token}&page=2"
            secrets.append(token)
        elif i % 6 == 3:
            user, pw = _s(rng, string.ascii_lowercase, 6), _s(rng, ALNUM, 12)
            url = f"https://{user}:{pw}@files.acme.io/export.csv"
            secrets.append(pw)
        elif i % 12 == 1:
            key = "AIza" + _s(rng, URLSAFE, 35)
            title = f"Why does key {key} fail?"
            secrets.append(key)
        docs.append({"id": f"s{i}", "text": "\n\n".join(parts), "url": url, "title": title, "secrets": secrets})
    return docs


def _lookalikes(rng: random.Random) -> list[str]:
    sha = hashlib.sha256(rng.randbytes(16)).hexdigest()
    img = base64.b64encode(rng.randbytes(300)).decode()
    return [
        f"Request id: {uuid.UUID(int=rng.getrandbits(128))}",
        f"sha256 checksum: {sha}",
        f"commit {hashlib.sha1(rng.randbytes(8)).hexdigest()} fixed the paginator",
        f"image: python@sha256:{hashlib.sha256(rng.randbytes(8)).hexdigest()}",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        f'<img src="data:image/png;base64,{img}" alt="diagram">',
        'api_key = "YOUR_API_KEY"\npassword = os.environ["DB_PASSWORD"]',
        "password: <your-password>\ntoken: ${GITHUB_TOKEN}",
        "stripe.api_key = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'  # Stripe's documented test key",
        f"integrity sha512-{base64.b64encode(rng.randbytes(64)).decode()}",
        "Connect to https://user@example.com/repo.git (you will be asked for the password)",
        f"arn:aws:iam::{rng.randint(10**11, 10**12 - 1)}:role/service-role/MyRole",
        f"Set the header X-Request-Id: {_s(rng, string.hexdigits.lower(), 32)}",
        "export AWS_SECRET_ACCESS_KEY=<secret>\nexport GITHUB_TOKEN=ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        f"The build {rng.randint(1000, 9999)} used cache key v2-deps-{hashlib.md5(rng.randbytes(4)).hexdigest()}",
        "client = OpenAI(api_key=os.environ['OPENAI_API_KEY'])",
    ]


def lookalike_documents(n: int = 200, seed: int = 11) -> list[dict]:
    """Documents of technical text with values that look like secrets but are not."""
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        items = _lookalikes(rng)
        chosen = [items[i % len(items)]] + rng.sample(items, 1)
        text = "\n\n".join([rng.choice(PROSE), *chosen, "That is all the setup needed."])
        docs.append(
            {
                "id": f"l{i}",
                "text": text,
                "url": f"https://docs.example.org/p/{i}?page=2",
                "title": f"Setup notes {i}",
                "secrets": [],
            }
        )
    return docs


def measure(redact_document) -> dict:
    """Recall over planted secrets (a secret counts as caught when it is gone from every field) and the share of
    look-alike documents changed in any field, for ``redact_document(doc) -> doc``."""
    secrets = caught = 0
    missed: list[str] = []
    for doc in secret_documents():
        out = redact_document({k: v for k, v in doc.items() if k != "secrets"})
        blob = "\n".join(str(out.get(k) or "") for k in ("text", "url", "title"))
        for value in doc["secrets"]:
            secrets += 1
            if value in blob:
                missed.append(value)
            else:
                caught += 1
    changed = []
    looks = lookalike_documents()
    for doc in looks:
        out = redact_document({k: v for k, v in doc.items() if k != "secrets"})
        if any(out.get(k) != doc.get(k) for k in ("text", "url", "title")):
            changed.append(doc["id"])
    return {
        "secrets": secrets,
        "recall": caught / secrets,
        "missed": missed,
        "lookalike_documents": len(looks),
        "false_positive_rate": len(changed) / len(looks),
        "changed": changed,
    }
