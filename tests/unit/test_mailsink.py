"""The SMTP sink of `sagashop up` keeps a message under its Message-ID, once however often it comes, and never
lets a Message-ID name a file outside its directory."""

from tools.local.mailsink import Keeper, file_name


def message(message_id: str, body: str = "hello") -> bytes:
    return f"Message-ID: {message_id}\r\nSubject: hi\r\n\r\n{body}\r\n".encode()


def test_a_message_sent_again_is_kept_once_as_last_sent(tmp_path):
    keeper = Keeper(tmp_path / "mail")
    keeper.keep(message("<abc123@sagashop>", "first"))
    keeper.keep(message("<abc123@sagashop>", "again"))
    [kept] = (tmp_path / "mail").iterdir()
    assert kept.name == "abc123@sagashop.eml"
    assert b"again" in kept.read_bytes()


def test_a_message_id_that_is_no_safe_file_name_is_named_by_its_hash():
    for unsafe in ("<../../etc/passwd>", "<a/b@x>", "<.hidden@x>"):
        name = file_name(message(unsafe))
        assert "/" not in name and not name.startswith(".") and len(name) == 64 + len(".eml")
    assert file_name(message("<a/b@x>")) != file_name(message("<a/c@x>"))
    assert file_name(b"Subject: no id\r\n\r\none") != file_name(b"Subject: no id\r\n\r\ntwo")
