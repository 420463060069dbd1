"""Reading uploaded lists: CSV shapes, JSON files, de-duplication and id validation."""

from __future__ import annotations

import json

import pytest

from journeyman.bulk import MAX_IDS, BulkInputError, clean_ids, parse_csv, parse_id_file


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("a\nb\nc\n", ["a", "b", "c"]),
        ("a\r\n\r\n b \r\n", ["a", "b"]),
        ("\ufeffa\nb", ["a", "b"]),
        ("contact_id\na\nb\n", ["a", "b"]),
        ("email,Contact_ID\nx@y,a\nz@y,b\n", ["a", "b"]),
        ('contact_id,note\na,"has, comma"\n', ["a"]),
        ("a,\nb,\n", ["a", "b"]),  # a trailing comma is still one id per line
    ],
)
def test_csv_shapes(text: str, ids: list[str]) -> None:
    assert parse_csv(text) == ids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no contact ids"),
        ("a,b\n", "line 1: 2 columns"),
        ("a\nb,c\n", "line 2: 2 columns"),
        ("contact_id,x\na,1\n,2\n", "line 3: no contact_id"),
    ],
)
def test_bad_csv(text: str, message: str) -> None:
    with pytest.raises(BulkInputError, match=message):
        parse_csv(text)


def test_clean_ids_dedupes_in_order_and_validates() -> None:
    assert clean_ids(["b", "a", " b ", "c", "a"]) == ["b", "a", "c"]
    for bad in (["a:b"], ["a b"], ["x" * 201], [""], [3], ["ok", "tab\there"]):
        with pytest.raises(BulkInputError, match="not valid contact ids"):
            clean_ids(bad)
    with pytest.raises(BulkInputError, match="no contact ids"):
        clean_ids([])
    # The cap counts distinct ids: duplicates beyond it are fine.
    assert len(clean_ids([f"c{n}" for n in range(MAX_IDS)] * 2)) == MAX_IDS
    with pytest.raises(BulkInputError, match="too many"):
        clean_ids(f"c{n}" for n in range(MAX_IDS + 1))


def test_id_files() -> None:
    assert parse_id_file("ids.json", json.dumps(["a", 7]).encode()) == ["a", "7"]
    assert parse_id_file("IDS.JSON", json.dumps({"contact_ids": ["a"]}).encode()) == ["a"]
    assert parse_id_file("ids.csv", b"contact_id\na\n") == ["a"]
    assert parse_id_file("ids.txt", b"a\nb\n") == ["a", "b"]
    for name, data, message in [
        ("ids.json", b"{nope", "not JSON"),
        ("ids.json", b'{"ids": []}', "want a JSON list"),
        ("ids.csv", "é".encode("latin-1"), "not UTF-8"),
    ]:
        with pytest.raises(BulkInputError, match=message):
            parse_id_file(name, data)
