"""Users' record files: JSON Lines, CSV and XLSX per the "Records in" contract."""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, date, datetime, timedelta

import openpyxl
import pytest

from nlp.errors import InvalidFileError
from nlp.records import Record, RecordFormat, read_records


def _jsonl(tmp_path, rows, name="feedback.jsonl"):
    path = tmp_path / name
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _reasons(result):
    return {r.line: r.reason for r in result.rejected}


def test_jsonl_keeps_good_records_and_reports_bad_ones_by_line(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {
                "id": "r1",
                "text": "菜很好吃但是配送太慢了",
                "nps": 6,
                "channel": "app",
                "store": "徐汇店",
            },
            {"id": "r2", "text": "Flight delayed 3 hours, no one told us why.", "lang": "en"},
            '{"id": "r3", "text": "broken json"',
            {"id": "r4", "text": "还行", "nps": "abc"},
            {"id": "r5", "text": "ok", "nps": 11},
            "",
            {"id": "r6", "text": "Bonjour", "lang": "fr"},
            {"id": "r1", "text": "duplicate of the first"},
            {"id": "r7", "text": "   "},
            {"id": "r8", "text": "4 stars", "rating": 4},
            {"text": "no id here"},
            {"id": "r9", "text": "fine", "ts": "05/01/2024"},
            {
                "id": "r10",
                "text": "客服态度很好",
                "csat": "5",
                "recommend": "yes",
                "ts": "2024-05-01",
            },
        ],
    )
    result = read_records(path)

    assert result.format is RecordFormat.jsonl
    assert [r.id for r in result.records] == ["r1", "r2", "r10"]
    assert result.total == 12  # 13 lines, one blank
    first = result.records[0]
    assert first.text == "菜很好吃但是配送太慢了" and first.nps == 6 and first.line == 1
    assert first.metadata == {"channel": "app", "store": "徐汇店"}
    assert result.records[1].lang == "en"
    last = result.records[2]
    assert last.csat == 5 and last.recommend is True and last.ts == date(2024, 5, 1)
    assert last.scores == {"csat": 5.0, "recommend": 1.0}

    reasons = _reasons(result)
    assert "not valid JSON" in reasons[3]
    assert reasons[4] == "nps must be a number, got 'abc'"
    assert reasons[5] == "nps must be between 0 and 10, got 11"
    assert reasons[7] == "lang must be zh or en (or absent to detect), got 'fr'"
    assert reasons[8] == "duplicate id 'r1', first seen on line 1"
    assert reasons[9] == "text is required"
    assert "rating needs rating_scale" in reasons[10]
    assert reasons[11] == "id is required"
    assert "ts must be an ISO 8601 date" in reasons[12]
    by_line = {r.line: r for r in result.rejected}
    assert by_line[5].id == "r5" and by_line[3].id is None


def test_jsonl_id_and_score_types(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {"id": 17, "text": "integer ids are read as their decimal string"},
            {"id": 1.5, "text": "float ids are not ids"},
            {"id": "n1", "text": 42},
            {"id": "n2", "text": "bool is not a score", "nps": True},
            {"id": "n3", "text": "scale given", "rating": 8, "rating_scale": 10, "ces": 2.5},
            {"id": "n4", "text": "above the scale", "rating": 6, "rating_scale": 5},
            {"id": "n5", "text": "nan", "csat": "NaN"},
            {"id": "n6", "text": "regional tag", "lang": "zh-CN", "ts": "2024-05-01T09:30:00Z"},
            [1, 2, 3],
        ],
    )
    result = read_records(path)
    assert {r.id: r.line for r in result.records} == {"17": 1, "n3": 5, "n6": 8}
    n3 = result.records[1]
    assert (n3.rating, n3.rating_scale, n3.ces) == (8, 10, 2.5)
    n6 = result.records[2]
    assert n6.lang == "zh" and n6.ts == datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    reasons = _reasons(result)
    assert reasons[2] == "id must be a string, got 1.5"
    assert reasons[3] == "text must be a string, got 42"
    assert reasons[4] == "nps must be a number, got true"
    assert reasons[6] == "rating 6 is above rating_scale 5"
    assert reasons[7] == "csat must be a finite number, got 'NaN'"
    assert reasons[9] == "expected a JSON object per line, got list"


def test_text_length_limit_counts_after_trimming(tmp_path):
    path = _jsonl(
        tmp_path,
        [
            {"id": "max", "text": "  " + "好" * 10_000 + "  "},
            {"id": "over", "text": "a" * 10_001},
        ],
    )
    result = read_records(path)
    assert [r.id for r in result.records] == ["max"]
    assert result.records[0].text.startswith("  好")  # kept as given: offsets index it
    assert result.rejected[0].reason == (
        "text is 10,001 characters after trimming; the limit is 10,000"
    )


def test_whole_file_json_mistakes_are_explained(tmp_path):
    array = tmp_path / "a.json"
    array.write_text(json.dumps([{"id": "1", "text": "x"}]), encoding="utf-8")
    with pytest.raises(InvalidFileError, match="JSON array"):
        read_records(array)
    pretty = tmp_path / "b.jsonl"
    pretty.write_text(json.dumps({"id": "1", "text": "x"}, indent=2), encoding="utf-8")
    with pytest.raises(InvalidFileError, match="one object per line"):
        read_records(pretty)


def test_csv_rows_are_numbered_like_a_spreadsheet(tmp_path):
    path = tmp_path / "survey.csv"
    path.write_text(
        "ID,Text,NPS,Region\n"
        'c1,"Courier was rude,\nand the box was crushed",2,East\n'
        "c2,物流很快，好评,10,\n"
        "\n"
        "c3,,5,North\n"
        "c4,too many cells,7,West,extra\n"
        "c5,trailing comma is fine,8,South,\n",
        encoding="utf-8",
    )
    result = read_records(path)
    assert [(r.id, r.line) for r in result.records] == [("c1", 2), ("c2", 3), ("c5", 7)]
    assert result.records[0].text == "Courier was rude,\nand the box was crushed"
    assert result.records[0].metadata == {"Region": "East"}
    assert result.records[1].metadata == {"Region": None}
    assert result.rejected[0].line == 5 and result.rejected[0].reason == "text is required"
    assert result.rejected[1].line == 6 and result.rejected[1].id == "c4"
    assert "5 cells but the header has 4" in result.rejected[1].reason
    assert result.total == 5


def test_gbk_csv_from_chinese_excel_is_decoded(tmp_path):
    path = tmp_path / "导出.csv"
    path.write_bytes(
        "id,text,渠道\n1,快递太慢了，等了一个星期,天猫\n2,客服回复很及时,京东\n".encode("gbk")
    )
    result = read_records(path)
    assert [r.text for r in result.records] == ["快递太慢了，等了一个星期", "客服回复很及时"]
    assert result.records[0].metadata == {"渠道": "天猫"}


def test_bom_semicolon_and_utf16_tab_exports(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffid;text;csat\nb1;Great staff;5\n".encode())
    assert read_records(bom).records[0].csat == 5
    utf16 = tmp_path / "unicode.txt"
    utf16.write_bytes("id\ttext\nu1\t服务态度差\n".encode("utf-16"))
    assert read_records(utf16).records[0].text == "服务态度差"


def test_csv_without_text_column_is_a_file_error(tmp_path):
    path = tmp_path / "no_text.csv"
    path.write_text("id,comment\n1,hello\n", encoding="utf-8")
    with pytest.raises(InvalidFileError, match="missing text") as err:
        read_records(path)
    assert "found: id, comment" in str(err.value)


def test_files_that_are_not_what_their_name_says(tmp_path):
    png = tmp_path / "feedback.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(InvalidFileError, match="not a CSV file: it looks like a PNG image"):
        read_records(png)
    fake_xlsx = tmp_path / "feedback.xlsx"
    fake_xlsx.write_text("id,text\n1,hello\n", encoding="utf-8")
    with pytest.raises(InvalidFileError, match="not an XLSX workbook"):
        read_records(fake_xlsx)
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64)
    with pytest.raises(InvalidFileError, match=r"\.xlsx or CSV"):
        read_records(xls)
    garbage = tmp_path / "noise.csv"
    garbage.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(InvalidFileError):
        read_records(garbage)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"  \n\n")
    with pytest.raises(InvalidFileError, match="empty"):
        read_records(empty)


def test_bytes_input_uses_filename_or_sniffs(tmp_path):
    data = '{"id": "x1", "text": "好评"}\n'.encode()
    assert read_records(data).format is RecordFormat.jsonl
    assert read_records(b"id,text\nx2,fine\n").records[0].id == "x2"
    assert read_records(data, filename="upload.jsonl").records[0].text == "好评"
    with pytest.raises(InvalidFileError, match="unknown format"):
        read_records(data, format="parquet")


def _xlsx_bytes(rows, *, extra_sheet=False):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    if extra_sheet:
        workbook.create_sheet("ignored").append(["id", "text"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def test_xlsx_first_sheet_with_formulas_types_and_row_numbers(tmp_path):
    when = datetime(2024, 3, 5, 14, 30)
    data = _xlsx_bytes(
        [
            ["id", "text", "nps", "recommend", "ts", "store"],
            [1001, "配送员态度很差，还把汤洒了", 3, False, when, "静安店"],
            ["x2", "Great value for money", "=4+5", 1, None, "Online"],
            [None, None, None, None, None, None],
            ["x3", "Queue was long", 8, "no", when.date().isoformat(), "=B2"],
            ["x4", "Checkout kept failing in the app", 1, True, when + timedelta(days=1), 42],
        ],
        extra_sheet=True,
    )
    path = tmp_path / "survey.xlsx"
    path.write_bytes(data)
    result = read_records(path)

    assert result.format is RecordFormat.xlsx
    assert [(r.id, r.line) for r in result.records] == [("1001", 2), ("x4", 6)]
    first = result.records[0]
    assert first.nps == 3 and first.recommend is False and first.ts == when
    assert first.metadata == {"store": "静安店"}
    assert result.records[1].metadata == {"store": 42}
    formula = {r.line: r for r in result.rejected}
    assert set(formula) == {3, 5}
    assert formula[3].id == "x2"
    assert formula[3].reason == (
        "cell C3 (nps) holds a formula (=4+5); paste values instead of formulas"
    )
    assert "cell F5 (store) holds a formula" in formula[5].reason


def test_xlsx_missing_columns_and_corrupt_workbooks(tmp_path):
    with pytest.raises(InvalidFileError, match="missing id"):
        read_records(_xlsx_bytes([["text"], ["hello"]]), filename="a.xlsx")
    zip_not_xlsx = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(zip_not_xlsx, "w") as archive:
        archive.writestr("readme.txt", "not a workbook")
    with pytest.raises(InvalidFileError, match="not a readable XLSX workbook"):
        read_records(zip_not_xlsx.getvalue(), filename="b.xlsx")


def test_every_data_row_is_accounted_for(tmp_path):
    rng = random.Random(7)
    rows = []
    for _ in range(300):
        row = {"id": f"r{rng.randrange(250)}", "text": rng.choice(["好", "", "bad", " "])}
        if rng.random() < 0.3:
            row["nps"] = rng.choice([0, 10, 11, -1, "7", "x"])
        rows.append(row)
    result = read_records(_jsonl(tmp_path, rows))
    assert result.total == 300
    assert len({r.id for r in result.records}) == len(result.records)
    assert all(isinstance(r, Record) and r.text.strip() for r in result.records)
