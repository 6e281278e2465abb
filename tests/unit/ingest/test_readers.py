import io
import json

from ingest.readers import read_updates

NOW = 1_700_000_000_000


def _read(text: str, name: str = "-", max_chars: int = 1000):
    return list(read_updates(io.StringIO(text), max_chars, name=name, default_ms=NOW))


def test_jsonl_records_become_updates_with_extra_columns_as_fields():
    line = json.dumps({"item_id": "j1", "title": "Nurse", "text": "Night shifts", "company": "Acme", "updated_at": 5})
    [r] = _read(line + "\n")
    assert r.reason is None
    assert (r.update.item_id, r.update.op, r.update.updated_at) == ("j1", "upsert", 5)
    assert r.update.fields == {"company": "Acme"}


def test_bad_lines_are_rejected_with_line_number_and_reason_and_the_rest_is_read():
    lines = [
        json.dumps({"item_id": "a", "title": "T"}),
        "{not json",
        json.dumps({"title": "no id"}),
        json.dumps({"item_id": "b", "title": "T", "text": "x" * 2000}),
        json.dumps({"item_id": "c", "op": "archive", "title": "T"}),
        json.dumps({"item_id": "d", "title": "", "text": ""}),
        json.dumps({"item_id": "e", "title": "ok"}),
    ]
    results = _read("\n".join(lines) + "\n")
    assert [r.update.item_id for r in results if r.update] == ["a", "e"]
    reasons = {r.line: r.reason for r in results if r.reason}
    assert reasons[2].startswith("malformed JSON")
    assert reasons[3] == "missing field item_id"
    assert "too long" in reasons[4]
    assert "op" in reasons[5]
    assert "neither title nor text" in reasons[6]


def test_delete_needs_no_text_and_updated_at_defaults_to_now():
    [r] = _read(json.dumps({"item_id": "a", "op": "delete"}))
    assert r.update.op == "delete" and r.update.updated_at == NOW


def test_iso_updated_at_is_read_as_utc_milliseconds():
    [r] = _read(json.dumps({"item_id": "a", "title": "T", "updated_at": "2024-01-01T00:00:00"}))
    assert r.update.updated_at == 1_704_067_200_000


def test_csv_with_doc_id_column_is_read_and_empty_cells_are_not_fields():
    text = 'doc_id,title,text,location,company\nd1,Chef,"Cooks, plans menus",Paris,\n'
    [r] = _read(text, name="jobs.csv")
    assert r.update.item_id == "d1" and r.update.text == "Cooks, plans menus"
    assert r.update.fields == {"location": "Paris"}


def test_format_is_sniffed_from_content_on_stdin():
    csv_results = _read("item_id,title\nx,Welder\n")
    jsonl_results = _read('{"item_id": "y", "title": "Baker"}\n')
    assert csv_results[0].update.item_id == "x"
    assert jsonl_results[0].update.item_id == "y"


def test_sniffing_does_not_cut_a_long_first_line():
    long = json.dumps({"item_id": "z", "title": "T", "text": "w" * 10_000})
    [r] = _read(long + "\n", max_chars=50_000)
    assert r.update is not None and len(r.update.text) == 10_000
